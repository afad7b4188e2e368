"""JapaneseVowels (UCI, CC BY 4.0): 9 speakers saying /ae/, 12 LPC cepstra per frame, 7-29 frames.

Read straight from the .ts text files that sktime ships (no sktime import, no download). Every
frame is labelled with the utterance's speaker, so it is framewise classification like TIMIT.
The official split is 270 train / 370 test; validation is carved out of train, stratified.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError
from ..core.objectives import FramewiseClassification
from ..core.sequences import Dataset, Sequences, split_by_fractions
from ..core.task import SequenceTask

SPLIT_SEED = 1  # fixed: the validation speakers' utterances are the same for every seed


def make(*, seed: int = 0, validation_fraction: float = 0.2) -> SequenceTask:
    """JapaneseVowels (real): speaker per frame."""
    del seed  # real data, fixed split
    if not 0 < validation_fraction < 1:
        raise ConfigError(f"vowels: validation_fraction must lie in (0, 1), got {validation_fraction}")
    folder = _data_folder()
    train_x, train_y = read_ts(folder / "JapaneseVowels_TRAIN.ts")
    test_x, test_y = read_ts(folder / "JapaneseVowels_TEST.ts")
    classes = sorted(set(train_y) | set(test_y), key=int)
    label = {name: i for i, name in enumerate(classes)}

    def sequences(xs, ys, indices) -> Sequences:
        return Sequences([xs[i] for i in indices], [np.full(len(xs[i]), label[ys[i]]) for i in indices])

    train, validation = [], []
    for name in classes:  # stratified: each speaker keeps the same share in validation
        members = np.flatnonzero(np.array(train_y) == name)
        fit, held = split_by_fractions(len(members), (1 - validation_fraction, validation_fraction), SPLIT_SEED)
        train += members[fit].tolist()
        validation += members[held].tolist()
    dataset = Dataset(
        splits={
            "train": sequences(train_x, train_y, sorted(train)),
            "validation": sequences(train_x, train_y, sorted(validation)),
            "test": sequences(test_x, test_y, range(len(test_x))),
        },
        classes=classes,
    )
    return SequenceTask("vowels", dataset, FramewiseClassification(len(classes)), bidirectional=True)


def _data_folder() -> Path:
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("vowels: the JapaneseVowels files ship with sktime; `pip install sktime`")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "JapaneseVowels"


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """A multivariate sktime .ts file: after '@data', one case per line, dimensions separated by
    ':' (each a comma-separated series), the class label last. Returns (T, dims) arrays, labels."""
    series, labels = [], []
    in_data = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower() == "@data"
                continue
            *dims, label = line.split(":")
            try:
                values = [np.array(d.split(","), dtype=np.float32) for d in dims]
                series.append(np.stack(values, axis=1))
            except ValueError:
                raise DataError(f"{path}:{number}: expected ':'-separated series of equal length") from None
            labels.append(label)
    if not series:
        raise DataError(f"{path}: no cases after '@data'")
    return series, labels
