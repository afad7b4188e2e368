"""The 371 Bach chorales bundled with music21 as 88-key rolls, one frame per quarter note.

The stand-in for the paper's JSB Chorales (382 chorales, 229/76/77): next-step prediction of the
roll with one unidirectional layer. Parsing every piece takes ~15-30 s, so rolls are cached.
"""

from __future__ import annotations

import math

from ...errors import DataError
from ..core.cache import cached
from ..core.objectives import NextStepBinary
from ..core.pianoroll import KEY_NAMES, KEYS, next_step_pairs, roll_from_chords
from ..core.sequences import Dataset, split_by_fractions
from ..core.task import SequenceTask

PAPER_SPLIT = (229, 76, 77)  # JSB's train/validation/test counts, scaled here to 371 pieces
SPLIT_SEED = 1  # fixed on purpose: every run and seed is scored on the same test chorales
FORMAT = 1


def make(*, seed: int = 0, pieces: int | None = None) -> SequenceTask:
    """Bach chorales (music21, real): next-step 88-key roll."""
    del seed  # real data with one fixed split; the seed only matters for generated tasks
    if pieces is not None and pieces < 3:
        raise DataError(f"chorales: pieces must be at least 3 (one per split), got {pieces}")
    settings = {"format": FORMAT, "pieces": pieces}
    dataset = cached("chorales", settings, lambda: _build(pieces))
    return SequenceTask("chorales", dataset, NextStepBinary(KEYS), bidirectional=False)


def _build(pieces: int | None) -> Dataset:
    from music21 import corpus  # heavy import (~0.3 s), only when a build is needed

    names = list(corpus.chorales.Iterator(returnType="filename"))[:pieces]
    rolls = [roll_from_chords(_quarter_note_chords(corpus.parse(n, forceSource=True))) for n in names]
    parts = split_by_fractions(len(rolls), PAPER_SPLIT, SPLIT_SEED)
    splits = {
        split: next_step_pairs(rolls[i] for i in part) for split, part in zip(("train", "validation", "test"), parts)
    }
    return Dataset(splits=splits, classes=KEY_NAMES)


def _quarter_note_chords(score) -> list[set[int]]:
    """The MIDI notes sounding at each whole quarter-note position (0, 1, 2, ...) of the score;
    notes that start and end between two positions are not sampled, as in JSB."""
    frames = [set() for _ in range(math.ceil(score.highestTime))]
    for element in score.flatten().notes:
        start, end = float(element.offset), float(element.offset + element.quarterLength)
        for frame in range(math.ceil(start), min(math.ceil(end), len(frames))):
            frames[frame].update(p.midi for p in element.pitches)
    return frames
