"""Long tables for `source = "files"`: a CSV or Parquet file with one row per step, read into the
arrays of odyssey's .npz contract (files.py), so both are checked and built the same way.

Rows come in any order: sequences keep the order of their first row, steps are sorted within each.
Errors name the column and the line (CSV, counting the header as line 1) or row (Parquet).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError
from .places import Where, first_bad


def read_table(file: Path, *, kind: str | None, features, target, sequence: str, step: str) -> tuple[dict, Where]:
    """The arrays of odyssey's .npz contract from a table with a row per step, and how to name its places."""
    frame = _load_table(file)
    columns = list(frame.columns)
    if frame.empty:
        raise DataError(f"{file}: no rows{' below the header' if columns else ''}; a long table needs a row per step")
    if target is None:
        raise ConfigError(
            f"{file}: a table needs option 'target' (its target column, or a list of them); its columns: "
            f"{', '.join(map(str, columns))}"
        )
    targets = [target] if isinstance(target, str) else list(target)
    has_split = "split" in columns and "split" not in targets and "split" not in (features or [])
    if features is None:
        features = [c for c in columns if c not in {sequence, step, "split", *targets}]
    for name in [sequence, step, *targets, *features]:
        if name not in columns:
            raise DataError(f"{file}: no column {name!r}; its columns: {', '.join(map(str, columns))}")
    if not features:
        raise DataError(f"{file}: no feature columns besides {sequence!r}, {step!r} and the target")
    lines = Where(file, rows=np.arange(len(frame)))
    for name in (sequence, step):
        missing = frame[name].isna().to_numpy()
        if missing.any():
            raise DataError(f"{file}: column {name!r}, {lines.line(int(np.flatnonzero(missing)[0]))} is empty")
    codes, ids = pd.factorize(frame[sequence], sort=False)  # sequences in order of first appearance
    order = np.lexsort((frame[step].to_numpy(), codes))
    codes, steps_sorted = codes[order], frame[step].to_numpy()[order]
    repeated = np.flatnonzero((codes[1:] == codes[:-1]) & (steps_sorted[1:] == steps_sorted[:-1]))
    if len(repeated):
        row = int(order[repeated[0] + 1])
        raise DataError(
            f"{file}: column {step!r}, {lines.line(row)}: step {steps_sorted[repeated[0] + 1]!r} of sequence "
            f"{ids[codes[repeated[0]]]!r} comes twice"
        )
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    where = Where(
        file,
        rows=order,
        ids=np.asarray(ids),
        columns={
            "inputs": features,
            "frame_labels": targets,
            "frame_targets": targets,
            "labels": targets,
            "split": ["split"],
            "lengths": [sequence],
        },
    )
    for column, name in enumerate(features):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            text = frame[name].to_numpy()[order]
            bad = pd.isna(pd.to_numeric(pd.Series(text), errors="coerce")).to_numpy() & ~pd.isna(text)
            position = int(np.flatnonzero(bad)[0]) if bad.any() else 0
            raise DataError(f"{where('inputs', position, column)} is {text[position]!r}; features must be numbers")
    arrays = {"inputs": frame[features].to_numpy(np.float64)[order], "lengths": np.diff(np.r_[starts, len(order)])}
    values = frame[targets].iloc[order]
    for column, name in enumerate(targets):
        missing = values[name].isna().to_numpy()
        if missing.any():
            raise DataError(f"{where('frame_targets', int(np.flatnonzero(missing)[0]), column)} is empty")
    if kind == "ctc":
        raise ConfigError(
            f"{file}: CTC targets (a label string per sequence) do not fit a long table; write an .npz with "
            "label_sequences and label_lengths"
        )
    numeric = all(
        pd.api.types.is_numeric_dtype(values[c]) and not pd.api.types.is_bool_dtype(values[c]) for c in targets
    )
    whole = numeric and all(pd.api.types.is_integer_dtype(values[c]) for c in targets)
    classes = kind in ("frame_class", "sequence_class") or (
        kind is None and len(targets) == 1 and (whole or not numeric)
    )
    if not classes:
        if not numeric:
            raise DataError(
                f"{where('frame_targets')} holds text; real-valued targets (kind {kind or 'frame_regression'!r}) "
                "need numbers"
            )
        arrays["frame_targets"] = values.to_numpy(np.float64)
    else:
        if len(targets) > 1:
            raise DataError(f"{file}: kind {kind!r} reads one target column, got {', '.join(targets)}")
        column = values[targets[0]]
        if whole:
            labels = column.to_numpy(np.int64)
        elif numeric:
            floats = column.to_numpy(np.float64)
            first_bad(
                floats != np.round(floats), "frame_labels", where, "is {}; class labels are whole numbers", floats
            )
            labels = floats.astype(np.int64)
        else:  # names: the classes are every name, sorted
            names = sorted(column.astype(str).unique())
            labels = np.searchsorted(names, column.astype(str).to_numpy())
            arrays["classes"] = np.array(names)
        if kind == "sequence_class":
            changes = np.flatnonzero((codes[1:] == codes[:-1]) & (labels[1:] != labels[:-1]))
            if len(changes):
                raise DataError(
                    f"{where('labels', int(codes[changes[0]]))}: the label changes within the sequence "
                    f"({lines.line(int(order[changes[0] + 1]))}); kind 'sequence_class' needs one label per sequence"
                )
            arrays["labels"] = labels[starts]
        else:
            arrays["frame_labels"] = labels
    if has_split:
        arrays["split"] = _split_column(frame["split"].iloc[order].to_numpy(), codes, starts, where)
    return arrays, where


def _load_table(file: Path) -> pd.DataFrame:
    try:
        if file.suffix.lower() == ".csv":
            return pd.read_csv(file)
        if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
            raise DataError(
                f"{file}: reading Parquet needs pyarrow: pip install pyarrow (or 'odyssey[parquet]'), or save the "
                "table as CSV"
            )
        return pd.read_parquet(file)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - pandas' parser errors have many types; the file is what is wrong
        raise DataError(
            f"{file}: cannot read the table ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None


def _split_column(values: np.ndarray, codes: np.ndarray, starts: np.ndarray, where: Where) -> np.ndarray:
    words = {"train": 0, "validation": 1, "test": 2, "0": 0, "1": 1, "2": 2}
    numbers = np.array([words.get(str(v).strip().lower().removesuffix(".0"), -1) for v in values])
    bad = np.flatnonzero(numbers < 0)
    if len(bad):
        raise DataError(
            f"{where.file}: column 'split', {where.line(int(where.rows[bad[0]]))} is {values[bad[0]]!r}; expected "
            "0/1/2 or train/validation/test"
        )
    changes = np.flatnonzero((codes[1:] == codes[:-1]) & (numbers[1:] != numbers[:-1]))
    if len(changes):
        raise DataError(f"{where('split', int(codes[changes[0]]))}: the split changes within the sequence")
    return numbers[starts]
