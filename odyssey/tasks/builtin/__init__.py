"""The tasks built in, no download: real music and speech that installed packages ship (chorales,
vowels), generated speech and handwriting in the shape of the paper's TIMIT and IAM-OnDB, and two
memory probes (adding, copy). Each module is one task; espeak and words serve the generated ones.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.task import SequenceTask
from . import adding, chorales, copying, handwriting, speech, vowels

TASKS: dict[str, Callable[..., SequenceTask]] = {
    # Real music and speech, generated speech and handwriting, probes.
    "chorales": chorales.make,
    "vowels": vowels.make,
    "speech": speech.make,
    "handwriting": handwriting.make,
    "adding": adding.make,
    "copy": copying.make,
}

__all__ = ["TASKS"]
