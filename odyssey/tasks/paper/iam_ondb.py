"""The paper's IAM-OnDB task from a copy of the corpus.

<path>/lineStrokes/a01/a01-000/a01-000u-01.xml holds line 1 of form a01-000u as pen strokes
(<StrokeSet><Stroke><Point x= y= time=/>...); <path>/ascii/a01/a01-000/a01-000u.txt holds the
form's text, one line per line after "CSR:". Inputs per point: (dx, dy, time since the stroke
began, pen-up); targets: the line's characters, for CTC.

Split: if <path> holds the IAM-OnDB task lists (trainset.txt, testset_v.txt, testset_t.txt,
testset_f.txt), the paper's 5355 / 2956 / 3859 lines come from trainset / testset_v + testset_t /
testset_f. Without them, whole forms are split at random (fixed seed) in those proportions.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..core.cache import cached, files_fingerprint
from ..core.objectives import CTCTranscription
from ..core.pen import pen_features
from ..core.sequences import labelled_dataset, split_by_fractions
from ..core.task import SequenceTask

FORMAT = 1
SPLIT_LISTS = {"train": ("trainset.txt",), "validation": ("testset_v.txt", "testset_t.txt"), "test": ("testset_f.txt",)}
PAPER_SPLIT = (5355, 2956, 3859)
SPLIT_SEED = 1


def make(*, path: str | os.PathLike, seed: int = 0) -> SequenceTask:
    """IAM-OnDB (your copy, path=folder): strokes to text, CTC."""
    del seed  # the corpus (or a fixed seed) fixes the split
    root = Path(path).expanduser().resolve()
    lines = find_lines(root)
    lists = [root / name for names in SPLIT_LISTS.values() for name in names]
    files = [p for pair in lines.values() for p in pair] + [p for p in lists if p.exists()]
    settings = {"format": FORMAT, "root": str(root), "files": files_fingerprint(root, set(files))}
    dataset = cached("iam_ondb", settings, lambda: _build(root, lines))
    return SequenceTask("iam_ondb", dataset, CTCTranscription(len(dataset.classes)), bidirectional=True)


def find_lines(root: Path) -> dict[str, tuple[Path, Path]]:
    """line id (a01-000u-01) -> (stroke XML, the form's ascii transcription)."""
    strokes_dir, ascii_dir = root / "lineStrokes", root / "ascii"
    if not strokes_dir.is_dir() or not ascii_dir.is_dir():
        raise DataError(f"{root}: expected IAM-OnDB's lineStrokes/ and ascii/ folders")
    lines = {}
    for xml in sorted(strokes_dir.rglob("*.xml")):
        form, _, number = xml.stem.rpartition("-")
        if not form or not number.isdigit():
            raise DataError(f"{xml}: expected a line file named like a01-000u-01.xml")
        text = ascii_dir / xml.parent.relative_to(strokes_dir) / f"{form}.txt"
        if not text.exists():
            raise DataError(f"{xml}: its transcription {text} is missing")
        lines[xml.stem] = (xml, text)
    if not lines:
        raise DataError(f"{strokes_dir}: no stroke files (*.xml)")
    return lines


def read_strokes(path: Path) -> list[np.ndarray]:
    """The strokes of a lineStrokes XML file as (N, 3) arrays of (x, y, time)."""
    try:
        strokes = [
            np.array([[float(p.attrib[k]) for k in ("x", "y", "time")] for p in stroke.iter("Point")])
            for stroke in ET.parse(path).getroot().iter("Stroke")
        ]
    except ET.ParseError as err:
        raise DataError(f"{path}: not well-formed XML ({err})") from None
    except (KeyError, ValueError):
        raise DataError(f"{path}: every <Point> needs numeric x, y and time attributes") from None
    strokes = [s for s in strokes if len(s)]
    if not strokes:
        raise DataError(f"{path}: expected <StrokeSet><Stroke><Point x= y= time=/>, found no points")
    return strokes


def read_transcription(path: Path) -> list[str]:
    """The text lines after 'CSR:' in an ascii transcription file."""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    marks = [i for i, line in enumerate(text) if line.strip() == "CSR:"]
    if not marks:
        raise DataError(f"{path}: expected a 'CSR:' line followed by the text lines")
    return [line.strip() for line in text[marks[0] + 1 :] if line.strip()]


def _line_split(root: Path, line_ids: list[str]) -> dict[str, str]:
    """line id -> split, from the task lists if present, else by whole forms at random."""
    lists = {split: [root / name for name in names] for split, names in SPLIT_LISTS.items()}
    if all(p.exists() for paths in lists.values() for p in paths):
        owner = {}
        for split, paths in lists.items():
            for entry in (e.strip() for p in paths for e in p.read_text().split()):
                owner[entry] = split
        # Lists name forms (a01-000u) or lines (a01-000u-01); a line not listed is left out.
        found = {i: owner.get(i, owner.get(i.rsplit("-", 1)[0])) for i in line_ids}
        return {i: split for i, split in found.items() if split}
    forms = sorted({i.rsplit("-", 1)[0] for i in line_ids})
    parts = split_by_fractions(len(forms), PAPER_SPLIT, SPLIT_SEED)
    form_split = {forms[k]: split for split, part in zip(SPLIT_LISTS, parts) for k in part}
    return {i: form_split[i.rsplit("-", 1)[0]] for i in line_ids}


def _build(root: Path, lines: dict[str, tuple[Path, Path]]):
    owner = _line_split(root, sorted(lines))
    transcriptions: dict[Path, list[str]] = {}
    written = {split: [] for split in SPLIT_LISTS}
    for line_id, split in sorted(owner.items()):
        xml, text_file = lines[line_id]
        if text_file not in transcriptions:
            transcriptions[text_file] = read_transcription(text_file)
        number = int(line_id.rsplit("-", 1)[1])
        if not 1 <= number <= len(transcriptions[text_file]):
            raise DataError(f"{xml}: line {number}, but {text_file} has {len(transcriptions[text_file])} lines")
        written[split].append((pen_features(read_strokes(xml)), transcriptions[text_file][number - 1]))
    for split, pairs in written.items():
        if not pairs:
            raise DataError(f"{root}: no {split} lines")
    return labelled_dataset(written, first_label=1)  # label 0 is the CTC blank
