"""Synthetic IAM-OnDB: text lines "written" with Hershey single-stroke fonts, read out with CTC.

Every writer has a font, a slant, a width and height, a baseline tilt, a pen speed, a sampling
density and a hand tremor (jitter); writers differ between the splits. Each line is a few common
words, sometimes capitalised or punctuated; the input per pen point is (dx, dy, time since the
stroke began, pen-up), as in IAM-OnDB.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..core.base import SPLITS
from ..core.cache import cached
from ..core.objectives import CTCTranscription
from ..core.pen import pen_features
from ..core.sequences import labelled_dataset
from ..core.task import SequenceTask
from .words import random_words

FORMAT = 1
# The Latin Hershey fonts that look like handwriting or print (the gothic ones do not).
FONTS = ("futural", "rowmans", "futuram", "cursive", "scripts", "scriptc", "timesr", "timesi", "timesib", "rowmant")
_loaded_fonts: dict[str, object] = {}  # loading a font costs far more than writing a line with it


def make(
    *,
    seed: int = 0,
    train_writers: int = 100,
    validation_writers: int = 20,
    test_writers: int = 20,
    lines_per_writer: int = 20,
    max_words: int = 4,
    time: bool = True,
) -> SequenceTask:
    """Hershey-font pen strokes (generated) to text, CTC."""
    writers = {"train": train_writers, "validation": validation_writers, "test": test_writers}
    if min(writers.values()) < 1 or lines_per_writer < 1:
        raise DataError("handwriting: every split needs at least one writer with at least one line")
    if max_words < 1:
        raise DataError(f"handwriting: max_words must be at least 1, got {max_words}")
    settings = dict(format=FORMAT, seed=seed, writers=writers, lines=lines_per_writer, words=max_words, time=time)
    dataset = cached("handwriting", settings, lambda: _build(seed, writers, lines_per_writer, max_words, time))
    return SequenceTask("handwriting", dataset, CTCTranscription(len(dataset.classes)), bidirectional=True)


def _font(name: str):
    if name not in _loaded_fonts:
        from HersheyFonts import HersheyFonts

        font = HersheyFonts()
        font.load_default_font(name)
        _loaded_fonts[name] = font
    return _loaded_fonts[name]


def _writer(rng: np.random.Generator) -> dict:
    return {
        "font": FONTS[rng.integers(len(FONTS))],
        "slant": rng.uniform(-0.15, 0.45),  # shear: Hershey's y axis points down, so + leans right
        "scale": rng.uniform(0.8, 1.25, size=2),
        "tilt": rng.uniform(-0.04, 0.04),  # baseline rotation, radians
        "step": rng.uniform(1.5, 3.0),  # font units between pen points: ~20 points a letter
        "speed": rng.uniform(60, 140),  # font units per second
        "jitter": rng.uniform(0.05, 0.35),  # tremor, font units
    }


def _text(rng: np.random.Generator, max_words: int) -> str:
    words = random_words(rng, 1, max_words)
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    words = [w + "," if i < len(words) - 1 and rng.random() < 0.1 else w for i, w in enumerate(words)]
    return " ".join(words) + ("." if rng.random() < 0.3 else "")


def write(text: str, writer: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes of `text` in the writer's hand: (N_i, 3) arrays of (x, y, seconds)."""
    cos, sin = np.cos(writer["tilt"]), np.sin(writer["tilt"])
    transform = np.array([[1.0, 0.0], [-writer["slant"], 1.0]]) * writer["scale"][None, :]
    transform = transform @ np.array([[cos, sin], [-sin, cos]])
    strokes, clock = [], 0.0
    for stroke in _font(writer["font"]).strokes_for_text(text):
        points = np.asarray(stroke, dtype=np.float64) @ transform
        # Resample at even arc-length steps, as a pen digitiser samples at a steady rate.
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        along = np.linspace(0.0, arc[-1], max(1, int(np.ceil(arc[-1] / writer["step"]))) + 1)
        xy = np.column_stack([np.interp(along, arc, points[:, 0]), np.interp(along, arc, points[:, 1])])
        xy += rng.normal(0.0, writer["jitter"], size=xy.shape)
        seconds = clock + along / writer["speed"]
        strokes.append(np.column_stack([xy, seconds]))
        clock = seconds[-1] + 0.1  # the pen travels in the air between strokes
    return strokes


def _build(seed: int, writers: dict[str, int], lines: int, max_words: int, with_time: bool):
    written = {}
    for number, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, number])  # each split its own stream
        written[split] = []
        for _ in range(writers[split]):
            hand = _writer(rng)
            for _ in range(lines):
                text = _text(rng, max_words)
                written[split].append((pen_features(write(text, hand, rng), with_time), text))
    return labelled_dataset(written, first_label=1)  # label 0 is the CTC blank
