"""Chords to 88-key piano rolls, and rolls to next-step prediction pairs (chorales, JSB)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...errors import DataError
from .sequences import Sequences

LOWEST, HIGHEST = 21, 108  # MIDI numbers of the piano's A0 and C8
KEYS = HIGHEST - LOWEST + 1
KEY_NAMES = [str(midi) for midi in range(LOWEST, HIGHEST + 1)]


def roll_from_chords(chords: Iterable[Iterable[int]]) -> np.ndarray:
    """(frames, 88) uint8: one row per chord, 1 for every sounding MIDI note; raises ValueError
    for a note off the piano."""
    chords = [list(chord) for chord in chords]
    roll = np.zeros((len(chords), KEYS), dtype=np.uint8)
    for frame, chord in enumerate(chords):
        for midi in chord:
            if not LOWEST <= midi <= HIGHEST or midi != int(midi):
                raise DataError(f"MIDI note {midi!r} is not a piano key ({LOWEST}-{HIGHEST})")
            roll[frame, int(midi) - LOWEST] = 1
    return roll


def next_step_pairs(rolls: Iterable[np.ndarray]) -> Sequences:
    """Input frame t, target frame t + 1, for every roll (both uint8: the task standardises the
    inputs to float32 itself, and the cache stays small)."""
    rolls = list(rolls)
    return Sequences(
        inputs=[roll[:-1] for roll in rolls],
        targets=[roll[1:] for roll in rolls],
    )
