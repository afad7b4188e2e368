"""Readers of the paper's own data sets, from the user's copy (option `path`): TIMIT, IAM-OnDB and
JSB Chorales, each split as Greff et al. split it; wavfile reads TIMIT's audio.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.task import SequenceTask
from . import iam_ondb, jsb, timit

TASKS: dict[str, Callable[..., SequenceTask]] = {
    "timit": timit.make,
    "iam_ondb": iam_ondb.make,
    "jsb": jsb.make,
}

__all__ = ["TASKS"]
