"""Your own sequences, from files: `source = "files"` in a study's [task_options.NAME].

`path` is an .npz, a long table (.csv, or .parquet with pyarrow installed), or a folder holding one
file per split (train, validation, test: .npz, .csv or .parquet). An .npz holds N sequences laid
end to end:

    inputs           float (total_steps, I)      every step's features
    lengths          int (N,)                    steps per sequence, summing to total_steps
    and one target:
    frame_labels     int (total_steps,)          -> frame_class: softmax per step, frame error
    labels           int (N,)                    -> sequence_class: read at the last step, error rate
    frame_targets    float (total_steps[, K])    -> frame_regression (MSE), or frame_multilabel
                                                    (sigmoid, NLL per frame) when every value is 0/1
    label_sequences  int (total_labels,)         -> ctc: labels 0..K-1 (odyssey adds the blank),
    + label_lengths  int (N,)                       character error rate
    optional:
    split            int (N,) of 0/1/2           train / validation / test
    classes          str (K,)                    class names; labels must then be < K

A table (read by longtable.py) has one row per step: a `sequence` column (any id), a `step` column (any order within a
sequence), feature columns and target column(s) (options `features`, `target`), and an optional
`split` column (0/1/2 or train/validation/test). Integer or text targets are classes, real ones are
regression (or multi-label when all 0/1); `kind = "sequence_class"` reads one label per sequence.

Without a split (array, column or folder), validation and test sequences are carved out at
random with `split_seed`, the same split for every study seed. Anything wrong stops with one line
naming the file, the array (or column) and the first bad index.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError, first_line
from ..core.base import SPLITS
from ..core.objectives import (
    CTCTranscription,
    FramewiseClassification,
    FramewiseRegression,
    NextStepBinary,
    SequenceClassification,
)
from ..core.sequences import Dataset, Sequences, split_by_fractions
from ..core.task import SequenceTask
from .places import Where, first_bad

KINDS = {
    "frame_class": ("frame_labels",),
    "sequence_class": ("labels",),
    "frame_regression": ("frame_targets",),
    "frame_multilabel": ("frame_targets",),
    "ctc": ("label_sequences", "label_lengths"),
}
TARGETS = ("frame_labels", "labels", "frame_targets", "label_sequences")
ARRAYS = (
    "inputs",
    "lengths",
    "frame_labels",
    "labels",
    "frame_targets",
    "label_sequences",
    "label_lengths",
    "split",
    "classes",
)
NPZ, TABLES = (".npz",), (".csv", ".parquet", ".pq")
TABLE_ONLY = ("features", "target", "sequence", "step")


def make(
    *,
    path: str | os.PathLike,
    seed: int = 0,
    kind: str | None = None,
    bidirectional: bool = False,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    features: list[str] | None = None,
    target: str | list[str] | None = None,
    sequence: str = "sequence",
    step: str = "step",
) -> SequenceTask:
    """Your sequences from an .npz, a CSV/Parquet table or a folder of train/validation/test files."""
    del seed  # your data: the split comes from the files or from split_seed, never from the study's seed
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"option 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    if not (0 < validation_fraction < 1 and 0 < test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise ConfigError(
            "options 'validation_fraction' and 'test_fraction' must be > 0 and sum to < 1, got "
            f"{validation_fraction} and {test_fraction}"
        )
    table = {"features": features, "target": target, "sequence": sequence, "step": step}
    files = data_files(Path(path))
    if all(f.suffix.lower() in NPZ for f in files.values()):
        given = [k for k in TABLE_ONLY if table[k] != make.__kwdefaults__[k]]
        if given:
            raise ConfigError(f"option {', '.join(map(repr, given))} applies to tables (.csv, .parquet), not to {path}")
    parts = {split: read_file(file, kind=kind, table=table) for split, file in files.items()}
    kinds = {part.kind for part in parts.values()}
    if len(kinds) > 1:
        raise DataError(
            f"{path}: the split files hold different kinds of targets "
            f"({', '.join(f'{s}: {p.kind}' for s, p in parts.items())})"
        )
    if (
        kind is None
        and all(f.suffix.lower() in TABLES for f in files.values())
        and _one_label_per_sequence(parts.values())
    ):
        # Over every file: a split file may hold sequences of one label only (a test file of one
        # class), the data set not.
        raise ConfigError(
            f'{path}: column {target!r} is the same on every row of each sequence: set kind = "sequence_class" (a '
            'label per sequence, read at its end) or kind = "frame_class" (a label per step) under the task\'s '
            "options"
        )
    if len(parts) == 1:
        (part,) = parts.values()
        parts = part.carve(validation_fraction, test_fraction, split_seed)
    else:
        for split, part in parts.items():
            if part.split is not None:
                raise DataError(
                    f"{part.where('split')}: a folder's files are the split already; {split} cannot hold another"
                )
    return _task(parts, bidirectional)


def _one_label_per_sequence(parts) -> bool:
    """Labels per step that never change within a sequence, where some sequence is longer than a step (where
    the two kinds differ)."""
    sequences = [t for part in parts if part.kind == "frame_class" for t in part.targets]
    return bool(sequences) and any(len(t) > 1 for t in sequences) and all((t == t[0]).all() for t in sequences)


def data_files(path: Path) -> dict[str, Path]:
    """{"all": file} for one file, {split: file} for a folder of train/validation/test files."""
    if path.is_dir():
        found = {}
        for split in SPLITS:
            matches = [path / f"{split}{suffix}" for suffix in NPZ + TABLES if (path / f"{split}{suffix}").is_file()]
            if len(matches) != 1:
                what = "none" if not matches else " and ".join(m.name for m in matches)
                raise DataError(
                    f"{path}: a data folder holds one file per split, {split}.npz, .csv or .parquet; found {what} "
                    f"for {split}"
                )
            found[split] = matches[0]
        return found
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix.lower() not in NPZ + TABLES:
        raise DataError(f"{path}: expected an .npz, .csv or .parquet file, or a folder of train/validation/test files")
    return {"all": path}


@dataclass
class Part:
    """One file's sequences, checked: inputs and targets per sequence, an optional split per sequence."""

    where: Where
    kind: str
    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    split: np.ndarray | None
    classes: list[str] | None  # names given in the file, else None
    size: int  # output units for regression/multi-label, highest class + 1 for classes

    def carve(self, validation_fraction: float, test_fraction: float, seed: int) -> dict[str, Part]:
        """Train, validation and test parts: by the file's split, else at random with `seed`."""
        if self.split is not None:
            chosen = [np.flatnonzero(self.split == n) for n in range(len(SPLITS))]
        else:
            fractions = (1 - validation_fraction - test_fraction, validation_fraction, test_fraction)
            chosen = split_by_fractions(len(self.inputs), fractions, seed)
        return {
            s: Part(
                self.where,
                self.kind,
                [self.inputs[i] for i in c],
                [self.targets[i] for i in c],
                None,
                self.classes,
                self.size,
            )
            for s, c in zip(SPLITS, chosen)
        }


def read_file(file: Path, *, kind: str | None, table: dict) -> Part:
    if file.suffix.lower() in TABLES:
        from .longtable import read_table  # pandas, only when a table is read

        arrays, where = read_table(file, kind=kind, **table)
    else:
        arrays, where = _read_npz(file)
    return _check(arrays, where, kind)


def _read_npz(file: Path) -> tuple[dict[str, np.ndarray], Where]:
    if not zipfile.is_zipfile(file):  # numpy would try it as a pickle and hint at allow_pickle
        raise DataError(
            f"{file}: not an .npz (no complete zip archive: truncated, or another format?); write it with numpy.savez"
        )
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise DataError(
                f"{file}: holds an object array (numpy.savez of lists or strings of mixed length); save plain "
                "numeric arrays"
            ) from None
        raise DataError(f"{file}: not a readable .npz of plain arrays ({first_line(err)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # a damaged member of a whole archive
        raise DataError(
            f"{file}: not a readable .npz ({type(err).__name__}: {first_line(err)}); write it again with numpy.savez"
        ) from None
    return arrays, Where(file)


def _check(a: dict[str, np.ndarray], where: Where, kind: str | None) -> Part:
    file = where.file
    unknown = sorted(set(a) - set(ARRAYS))
    if unknown:
        raise DataError(f"{where(unknown[0])} is not one odyssey reads; an .npz holds {', '.join(ARRAYS)}")
    for name in ("inputs", "lengths"):
        if name not in a:
            raise DataError(f"{file}: missing array '{name}'")
    inputs, lengths = a["inputs"], a["lengths"]
    if inputs.ndim != 2 or not _numeric(inputs):
        raise DataError(
            f"{where('inputs')} must be numbers of shape (total_steps, features), got {inputs.dtype} {inputs.shape}"
        )
    _integers(a, "lengths", where, shape=(None,))
    if len(lengths) == 0:
        raise DataError(f"{where('lengths')} is empty: the file holds no sequences")
    first_bad(lengths < 1, "lengths", where, "is {}; every sequence needs at least one step", lengths)
    if int(lengths.sum()) != len(inputs):
        raise DataError(f"{where('lengths')} sums to {int(lengths.sum())} steps, but 'inputs' has {len(inputs)} rows")
    bad = ~np.isfinite(inputs)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(f"{where('inputs', int(row), int(column))} is {inputs[row, column]}; inputs must be finite")
    kind = _kind(a, where, kind)
    steps, n = len(inputs), len(lengths)
    names = None
    if "classes" in a:
        if kind not in ("frame_class", "sequence_class", "ctc"):
            raise DataError(f"{where('classes')} names classes, but the targets are {kind}")
        if (
            a["classes"].ndim != 1
            or a["classes"].dtype.kind not in "US"
            or len(set(a["classes"].tolist())) != len(a["classes"])
        ):
            raise DataError(f"{where('classes')} must be different names, shape (K,)")
        names = [str(c) for c in a["classes"]]
    if kind in ("frame_class", "sequence_class"):
        array = KINDS[kind][0]
        labels = _integers(a, array, where, shape=(steps if kind == "frame_class" else n,))
        _labels_in_range(labels, array, where, names)
        targets = np.split(labels, np.cumsum(lengths)[:-1]) if kind == "frame_class" else list(labels.reshape(-1, 1))
        size = len(names) if names else int(labels.max()) + 1
    elif kind == "ctc":
        flat = _integers(a, "label_sequences", where, shape=(None,))
        label_lengths = _integers(a, "label_lengths", where, shape=(n,))
        first_bad(label_lengths < 0, "label_lengths", where, "is {}; a length cannot be negative", label_lengths)
        if int(label_lengths.sum()) != len(flat):
            raise DataError(
                f"{where('label_lengths')} sums to {int(label_lengths.sum())}, but 'label_sequences' holds "
                f"{len(flat)} labels"
            )
        _labels_in_range(flat, "label_sequences", where, names)
        first_bad(
            label_lengths > lengths,
            "label_lengths",
            where,
            "is {}, more labels than the sequence has steps (CTC needs at least one step per label)",
            label_lengths,
        )
        targets = [t + 1 for t in np.split(flat, np.cumsum(label_lengths)[:-1])]  # 0 is CTC's blank
        size = len(names) if names else int(flat.max(initial=-1)) + 1
    else:
        values = a["frame_targets"]
        if not _numeric(values) or values.ndim not in (1, 2) or len(values) != steps:
            raise DataError(
                f"{where('frame_targets')} must be numbers of shape (total_steps,) or (total_steps, K) with "
                f"total_steps {steps}, got {values.dtype} {values.shape}"
            )
        values = values.reshape(steps, -1).astype(np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise DataError(
                f"{where('frame_targets', int(row), int(column))} is {values[row, column]}; targets must be finite"
            )
        if kind == "frame_multilabel":
            bad = (values != 0) & (values != 1)
            if bad.any():
                row, column = np.argwhere(bad)[0]
                raise DataError(
                    f"{where('frame_targets', int(row), int(column))} is {values[row, column]}; kind "
                    "'frame_multilabel' needs 0/1 values"
                )
        targets = np.split(values, np.cumsum(lengths)[:-1])
        size = values.shape[1]
    split = None
    if "split" in a:
        split = _integers(a, "split", where, shape=(n,))
        first_bad(
            (split < 0) | (split > 2), "split", where, "is {}; expected 0 (train), 1 (validation) or 2 (test)", split
        )
    return Part(where, kind, np.split(inputs, np.cumsum(lengths)[:-1]), targets, split, names, size)


def _kind(a: dict, where: Where, kind: str | None) -> str:
    """The kind the arrays hold, or the one asked for if they hold it."""
    held = [t for t in TARGETS if t in a]
    if kind is not None:
        missing = [name for name in KINDS[kind] if name not in a]
        if missing:
            has = f"it has {', '.join(held)}" if held else "it has no targets"
            raise DataError(f"{where.file}: kind {kind!r} needs array '{missing[0]}', which the file lacks ({has})")
        return kind
    if not held:
        raise DataError(
            f"{where.file}: no targets; expected one of frame_labels, labels, frame_targets, label_sequences + "
            "label_lengths"
        )
    if len(held) > 1:
        raise DataError(
            f"{where.file}: several targets ({', '.join(held)}); choose one with option kind = "
            f"{' or '.join(repr(k) for k in KINDS)}"
        )
    if held[0] == "label_sequences" and "label_lengths" not in a:
        raise DataError(
            f"{where.file}: missing array 'label_lengths' (CTC targets are label_sequences + label_lengths)"
        )
    if held[0] == "frame_targets":
        values = a["frame_targets"]
        binary = _numeric(values) and bool(np.isin(values, (0, 1)).all())
        return "frame_multilabel" if binary else "frame_regression"
    return next(k for k, arrays in KINDS.items() if arrays[0] == held[0])


def _numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "biuf"


def _integers(a: dict, name: str, where: Where, *, shape: tuple) -> np.ndarray:
    array = a[name]
    if (
        array.dtype.kind not in "iu"
        or array.ndim != len(shape)
        or any(s is not None and s != d for s, d in zip(shape, array.shape))
    ):
        expected = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ",)"
        raise DataError(f"{where(name)} must be integers of shape {expected}, got {array.dtype} {array.shape}")
    return array.astype(np.int64)


def _labels_in_range(labels: np.ndarray, name: str, where: Where, names: list[str] | None) -> None:
    first_bad(labels < 0, name, where, "is {}; labels count from 0", labels)
    if names is not None:
        first_bad(
            labels >= len(names),
            name,
            where,
            f"is {{}}; 'classes' names {len(names)} classes (0..{len(names) - 1})",
            labels,
        )


def _task(parts: dict[str, Part], bidirectional: bool) -> SequenceTask:
    for split, part in parts.items():
        if not part.inputs:
            raise DataError(
                f"{part.where.file}: the {split} split is empty; give more sequences, other fractions or a split "
                "with every part"
            )
    first = next(iter(parts.values()))
    kind, where = first.kind, first.where
    widths = {p.inputs[0].shape[1] for p in parts.values()}
    if len(widths) > 1:
        raise DataError(f"{where.file}: the split files have different numbers of input features ({sorted(widths)})")
    names = {tuple(p.classes) for p in parts.values() if p.classes is not None}
    if len(names) > 1 and all(p.where.rows is not None for p in parts.values()):
        parts = _common_classes(parts)  # tables' text labels: each file numbered only the names it holds
        names = {tuple(next(iter(parts.values())).classes)}
    if len(names) > 1:
        raise DataError(f"{where.file}: the split files name different classes")
    size = max(p.size for p in parts.values())
    classes = list(next(iter(names))) if names else [str(i) for i in range(size)]
    if kind in ("frame_regression", "frame_multilabel") and len({p.size for p in parts.values()}) > 1:
        raise DataError(f"{where.file}: the split files have different numbers of frame_targets columns")
    objective = {
        "frame_class": FramewiseClassification,
        "sequence_class": SequenceClassification,
        "ctc": CTCTranscription,
        "frame_regression": FramewiseRegression,
        "frame_multilabel": NextStepBinary,
    }[kind](size)
    if kind != "ctc" and kind.endswith("class") and size < 2:
        raise DataError(f"{where.file}: every label is {size - 1}; classification needs at least two classes")
    dataset = Dataset(
        {s: Sequences(list(p.inputs), list(p.targets)) for s, p in parts.items()},
        classes=[] if kind == "frame_regression" else classes,
    )
    return SequenceTask("files", dataset, objective, bidirectional=bidirectional)


def _common_classes(parts: dict[str, Part]) -> dict[str, Part]:
    """The parts with their text labels numbered among every file's names, sorted."""
    union = sorted({name for p in parts.values() for name in p.classes or ()})
    renumbered = {}
    for split, p in parts.items():
        number = np.searchsorted(union, np.array(p.classes or [""]))
        renumbered[split] = Part(p.where, p.kind, p.inputs, [number[t] for t in p.targets], p.split, union, len(union))
    return renumbered
