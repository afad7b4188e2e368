"""How an error in your data names its place: an .npz's array and index, or a table's column and
line (CSV) or row (Parquet), so a bad value stops with one line the user can find.

Shared by the .npz reader (files.py) and the long-table reader (longtable.py), which builds the
same arrays: its own module so that neither reader imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DataError

# Arrays with a value per sequence, not per step: a table names their place by sequence id.
PER_SEQUENCE = ("lengths", "labels", "label_lengths", "split")


@dataclass
class Where:
    """How an error names a place: an .npz's array and index, or a table's column and line."""

    file: Path
    columns: dict[str, list[str]] = field(default_factory=dict)  # table: array -> its columns
    rows: np.ndarray | None = None  # table: position in sequence order -> row of the file
    ids: np.ndarray | None = None  # table: sequence number -> its id

    def __call__(self, array: str, index: int | None = None, column: int | None = None) -> str:
        if self.rows is None:
            at = "" if index is None else f" index {index}" + ("" if column is None else f", column {column}")
            return f"{self.file}: array '{array}'{at}"
        names = self.columns.get(array, [array])
        name = names[column or 0] if names else array
        if index is None:
            return f"{self.file}: column '{name}'"
        if array in PER_SEQUENCE:
            return f"{self.file}: column '{name}', sequence {self.ids[index]!r}"
        return f"{self.file}: column '{name}', {self.line(int(self.rows[index]))}"

    def line(self, row: int) -> str:
        """A row of the table as its user finds it: a CSV's line (the header is line 1), a Parquet row."""
        return f"line {row + 2}" if self.file.suffix.lower() == ".csv" else f"row {row}"


def first_bad(bad: np.ndarray, name: str, where: Where, message: str, values: np.ndarray) -> None:
    """DataError at the first True of `bad`, its value put into `message` ("is {}; ...")."""
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where(name, index)} {message.format(values[index])}")
