"""The paper's JSB Chorales from the public `JSB Chorales.pickle` (Boulanger-Lewandowski et al.):
a dict with 'train', 'valid' and 'test' lists of pieces, each a list of chords of MIDI numbers."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from ...errors import DataError
from ..core.objectives import NextStepBinary
from ..core.pianoroll import KEY_NAMES, KEYS, next_step_pairs, roll_from_chords
from ..core.sequences import Dataset
from ..core.task import SequenceTask

PICKLE_SPLITS = {"train": "train", "validation": "valid", "test": "test"}


def make(*, path: str | os.PathLike, seed: int = 0) -> SequenceTask:
    """JSB Chorales (your copy, path=pickle): next-step roll."""
    del seed  # the pickle fixes the split
    return SequenceTask("jsb", read_jsb(path), NextStepBinary(KEYS), bidirectional=False)


def read_jsb(path: str | os.PathLike) -> Dataset:
    path = Path(path)
    expected = "a pickled dict with 'train', 'valid', 'test' lists of pieces (lists of chords of MIDI numbers)"
    try:
        with open(path, "rb") as f:
            # The public file was written by Python 2; latin1 reads its byte strings. Like any
            # pickle it can run code: only point this at a file you trust.
            data = pickle.load(f, encoding="latin1")
    except OSError as err:
        raise DataError(f"{path}: cannot read the JSB pickle ({err.strerror or err})") from None
    except Exception as err:
        raise DataError(f"{path}: not a pickle ({type(err).__name__}); expected {expected}") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in PICKLE_SPLITS.values()):
        raise DataError(f"{path}: expected {expected}")
    splits = {}
    for split, key in PICKLE_SPLITS.items():
        rolls = []
        for number, piece in enumerate(data[key]):
            where = f"{path}: {key} piece {number}"
            try:
                roll = roll_from_chords(piece)
            except (TypeError, ValueError) as err:
                raise DataError(f"{where}: {err if isinstance(err, ValueError) else 'not a list of chords'}") from None
            if len(roll) < 2:
                raise DataError(f"{where}: needs at least 2 chords for next-step prediction")
            rolls.append(roll)
        splits[split] = next_step_pairs(rolls)
    return Dataset(splits=splits, classes=KEY_NAMES)
