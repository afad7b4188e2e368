"""Where built data sets live between runs, keyed by the settings that made them.

Building some tasks costs seconds to tens of seconds (parsing 371 chorales, synthesising speech),
so each build is stored once as an npz under the user cache directory and reloaded by
every later run, trial and process that asks for the same settings.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .sequences import Dataset, Sequences

# Bump when the npz layout below changes, so old files are rebuilt rather than misread.
LAYOUT_VERSION = 1

_builds_allowed = contextvars.ContextVar("odyssey_task_builds_allowed", default=True)


class NotCached(LookupError):
    """Raised inside `cache_only()` when a data set would have to be built."""


def cache_dir() -> Path:
    """$ODYSSEY_CACHE_DIR, else $XDG_CACHE_HOME/odyssey, else ~/.cache/odyssey."""
    if os.environ.get("ODYSSEY_CACHE_DIR"):
        return Path(os.environ["ODYSSEY_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "odyssey"


@contextlib.contextmanager
def cache_only() -> Iterator[None]:
    """Within this block, a data set that is not cached raises NotCached instead of being built."""
    token = _builds_allowed.set(False)
    try:
        yield
    finally:
        _builds_allowed.reset(token)


def cache_path(name: str, settings: dict) -> Path:
    """The file for `name` built with `settings` (JSON-serialisable)."""
    text = json.dumps({"layout": LAYOUT_VERSION, **settings}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return cache_dir() / f"{name}-{digest}.npz"


def cached(name: str, settings: dict, build: Callable[[], Dataset]) -> Dataset:
    """Load the data set for (name, settings) from the cache, building and storing it if absent."""
    path = cache_path(name, settings)
    if path.exists():
        return _load(path)
    if not _builds_allowed.get():
        raise NotCached(f"{name} is not built yet ({path} is missing)")
    dataset = build()
    _save(path, dataset)
    return dataset


def files_fingerprint(root: Path, paths) -> str:
    """A digest of the files' names (relative to root), sizes and modification times: part of the
    cache key of a data set read from the user's files, so a changed copy is read again."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        info = path.stat()
        digest.update(f"{path.relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _save(path: Path, dataset: Dataset) -> None:
    arrays: dict[str, np.ndarray] = {"classes": np.array(json.dumps(dataset.classes))}
    for split, seqs in dataset.splits.items():
        for field in ("inputs", "targets"):
            items = getattr(seqs, field)
            arrays[f"{split}/{field}"] = np.concatenate(items) if items else np.zeros((0,))
            arrays[f"{split}/{field}_lengths"] = np.array([len(x) for x in items], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: parallel trials may build the same data set at once, and a reader must
    # never see half a file. Uncompressed: features are floats that barely compress, and loading
    # must stay fast because every trial does it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path) -> Dataset:
    with np.load(path, allow_pickle=False) as data:
        classes = json.loads(str(data["classes"]))
        names = sorted({key.split("/")[0] for key in data.files if "/" in key})
        splits = {
            split: Sequences(
                inputs=_unpack(data[f"{split}/inputs"], data[f"{split}/inputs_lengths"]),
                targets=_unpack(data[f"{split}/targets"], data[f"{split}/targets_lengths"]),
            )
            for split in names
        }
    return Dataset(splits=splits, classes=classes)


def _unpack(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    if len(lengths) == 0:
        return []
    return list(np.split(flat, np.cumsum(lengths)[:-1]))
