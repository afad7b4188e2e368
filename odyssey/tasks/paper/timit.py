"""The paper's TIMIT task from a copy of the corpus in its standard layout.

<path>/TRAIN/DR*/<SPEAKER>/<UTTERANCE>.WAV with a .PHN beside each (any letter case; SPHERE or
RIFF headers; a converted `SA1.WAV.wav` counts as SA1). The usual split, which gives the paper's
3696 / 400 / 192: all TRAIN speakers, the 24 core-test speakers as test, and 50 other TEST speakers
as validation; the SA dialect sentences, which every speaker reads, are left out.
Inputs: 12 MFCCs + energy with first and second derivatives (39), 25 ms window, 10 ms step.
Targets: the 61 TIMIT phones, one per frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..core.cache import cached, files_fingerprint
from ..core.features import frame_count, frame_labels, mfcc_energy_deltas
from ..core.objectives import FramewiseClassification
from ..core.sequences import Dataset, Sequences
from ..core.task import SequenceTask
from .wavfile import read_wav

FORMAT = 1
PHONES = tuple(
    """aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv
    ih ix iy jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh""".split()
)
CORE_TEST_SPEAKERS = frozenset(
    """MDAB0 MWBT0 FELC0 MTAS1 MWEW0 FPAS0 MJMP0 MLNT0 FPKT0 MLLL0 MTLS0 FJLM0 MBPM0 MKLT0 FNLP0
    MCMJ0 MJDH0 FMGD0 MGRT0 MNJM0 FDHC0 MJLN0 MPAM0 FMLD0""".split()
)
VALIDATION_SPEAKERS = 50
SPLIT_SEED = 1  # which 50 non-core TEST speakers validate: fixed, the same for every run


def make(*, path: str | os.PathLike, seed: int = 0) -> SequenceTask:
    """TIMIT (your copy, path=folder): phone per frame."""
    del seed  # the corpus fixes the split
    root = Path(path).expanduser().resolve()
    utterances = find_utterances(root)
    files = [f for pair in utterances.values() for f in pair]
    settings = {"format": FORMAT, "root": str(root), "files": files_fingerprint(root, files)}
    dataset = cached("timit", settings, lambda: _build(root, utterances))
    return SequenceTask("timit", dataset, FramewiseClassification(len(PHONES)), bidirectional=True)


def find_utterances(root: Path) -> dict[tuple[str, str, str], tuple[Path, Path]]:
    """(TRAIN|TEST, speaker, utterance) -> (.WAV, .PHN) for every non-SA utterance under root."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected TIMIT's layout <path>/TRAIN/DR*/<SPEAKER>/*.WAV")
    parts = {p.name.upper(): p for p in root.iterdir() if p.is_dir()}
    if "TRAIN" not in parts or "TEST" not in parts:
        raise DataError(f"{root}: expected TRAIN and TEST folders (TIMIT's layout), found {sorted(parts)}")
    found = {}
    for part in ("TRAIN", "TEST"):
        for wav in sorted(parts[part].glob("*/*/*")):
            if wav.suffix.upper() != ".WAV" or not wav.parent.parent.name.upper().startswith("DR"):
                continue
            utterance = wav.name.split(".")[0].upper()
            key = (part, wav.parent.name.upper(), utterance)
            if utterance.startswith("SA") or key in found:
                continue
            phn = [p for p in wav.parent.iterdir() if p.name.upper() == f"{utterance}.PHN"]
            if not phn:
                raise DataError(f"{wav}: no {utterance}.PHN beside it")
            found[key] = (wav, phn[0])
    if not any(part == "TRAIN" for part, _, _ in found):
        raise DataError(f"{root}: no utterances found under TRAIN/DR*/<SPEAKER>/*.WAV")
    return found


def read_phn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(start samples, phone ids) of a .PHN file: lines 'start end phone'."""
    starts, ids = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise DataError(f"{path}:{number}: expected 'start end phone', found {line.strip()!r}")
        if fields[2] not in PHONES:
            raise DataError(f"{path}:{number}: {fields[2]!r} is not one of TIMIT's 61 phones")
        starts.append(int(fields[0]))
        ids.append(PHONES.index(fields[2]))
    if not starts:
        raise DataError(f"{path}: no phone lines")
    return np.array(starts), np.array(ids, dtype=np.int64)


def _build(root: Path, utterances: dict) -> Dataset:
    test_speakers = sorted({s for part, s, _ in utterances if part == "TEST"})
    others = [s for s in test_speakers if s not in CORE_TEST_SPEAKERS]
    chosen = np.random.default_rng(SPLIT_SEED).permutation(len(others))[:VALIDATION_SPEAKERS]
    validation = {others[i] for i in chosen}
    splits = {split: Sequences() for split in ("train", "validation", "test")}
    for (part, speaker, _), (wav, phn) in sorted(utterances.items()):
        if part == "TRAIN":
            split = "train"
        elif speaker in CORE_TEST_SPEAKERS:
            split = "test"
        elif speaker in validation:
            split = "validation"
        else:
            continue
        samples, rate = read_wav(wav)
        starts, ids = read_phn(phn)
        if frame_count(len(samples), rate) == 0:
            raise DataError(f"{wav}: shorter than one 25 ms frame")
        x = mfcc_energy_deltas(samples, rate)
        splits[split].inputs.append(x)
        splits[split].targets.append(frame_labels(starts, ids, len(x), rate))
    for split, seqs in splits.items():
        if not len(seqs):
            raise DataError(
                f"{root}: no {split} utterances (test: the 24 core-test speakers under TEST; "
                "validation: other TEST speakers; train: TRAIN)"
            )
    return Dataset(splits=splits, classes=list(PHONES))
