"""Synthetic TIMIT: English word sequences spoken by espeak-ng, a phone label per 10 ms frame.

Every "speaker" is one espeak-ng voice variant with its own rate, pitch and pitch range; each
split draws its own speakers, as TIMIT tests on speakers unseen in training. The defaults give
TIMIT's shape: 462 / 50 / 24 speakers with 8 utterances each (3696 / 400 / 192 sequences) and
39 MFCC-based inputs.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..core.base import SPLITS
from ..core.cache import cached
from ..core.features import EXTRACTORS, frame_labels
from ..core.objectives import FramewiseClassification
from ..core.sequences import Dataset, labelled_dataset
from ..core.task import SequenceTask
from . import espeak
from .words import random_words

FORMAT = 1
ACCENT = "en-us"  # one accent keeps one phone inventory, like TIMIT's American English
VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
RATES, PITCHES, PITCH_RANGES = (130, 200), (25, 75), (20, 80)  # espeak-ng units, inclusive
SILENCE = "sil"


def make(
    *,
    seed: int = 0,
    train_speakers: int = 462,
    validation_speakers: int = 50,
    test_speakers: int = 24,
    utterances_per_speaker: int = 8,
    min_words: int = 3,
    max_words: int = 8,
    features: str = "mfcc",
) -> SequenceTask:
    """espeak-ng speech (generated): phone per 10 ms frame."""
    speakers = {"train": train_speakers, "validation": validation_speakers, "test": test_speakers}
    if min(speakers.values()) < 1 or utterances_per_speaker < 1:
        raise DataError("speech: every split needs at least one speaker with at least one utterance")
    if not 1 <= min_words <= max_words:
        raise DataError(f"speech: need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    if features not in EXTRACTORS:
        raise DataError(f"speech: features must be one of {sorted(EXTRACTORS)}, got {features!r}")
    settings = dict(
        format=FORMAT,
        seed=seed,
        speakers=speakers,
        utterances=utterances_per_speaker,
        words=(min_words, max_words),
        features=features,
    )
    dataset = cached(
        "speech",
        settings,
        lambda: _build(seed, speakers, utterances_per_speaker, (min_words, max_words), features),
    )
    return SequenceTask("speech", dataset, FramewiseClassification(len(dataset.classes)), bidirectional=True)


def _speaker_jobs(rng: np.random.Generator, speakers: int, utterances: int, words: tuple[int, int]) -> list[dict]:
    return [
        {
            "voice": f"{ACCENT}+{VOICES[rng.integers(len(VOICES))]}",
            "rate": int(rng.integers(RATES[0], RATES[1] + 1)),
            "pitch": int(rng.integers(PITCHES[0], PITCHES[1] + 1)),
            "range": int(rng.integers(PITCH_RANGES[0], PITCH_RANGES[1] + 1)),
            "texts": [" ".join(random_words(rng, *words)) for _ in range(utterances)],
        }
        for _ in range(speakers)
    ]


def _build(seed: int, speakers: dict[str, int], utterances: int, words: tuple[int, int], features: str) -> Dataset:
    jobs, owner = [], []
    for number, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, number])  # each split its own stream: sizes stay independent
        jobs += _speaker_jobs(rng, speakers[split], utterances, words)
        owner += [split] * speakers[split]
    extract = EXTRACTORS[features]
    frames: dict[str, list] = {split: [] for split in SPLITS}
    for split, spoken in zip(owner, espeak.synthesise(jobs)):
        for audio, starts, phones in spoken:
            x = extract(audio.astype(np.float64), espeak.SAMPLE_RATE)
            phones = np.array([SILENCE if p.startswith("_") else p for p in phones])
            frames[split].append((x, frame_labels(starts, phones, len(x), espeak.SAMPLE_RATE)))
    return labelled_dataset(frames)
