"""Where a task of your own comes from: `source = "files"` (files.py beside this one) or
`source = "module:function"`, a factory `make(*, seed, **options) -> SequenceTask` of yours.

A factory is found by its import path from the current folder or an installed package, in every
worker process and on every machine; what the stored study records of it (module, function, a
hash of the module's source file) lets a changed factory be noticed like a changed study file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path

from ...errors import ConfigError
from . import files

FILES = "files"
_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def factory_path(task: str, source: object) -> tuple[str, str]:
    """(module, function) of `source`, or a one-line ConfigError saying what a source is."""
    module, sep, function = source.partition(":") if isinstance(source, str) else ("", "", "")
    if not sep or not _IMPORT_PATH.fullmatch(module) or not function.isidentifier():
        raise ConfigError(
            f'task {task!r}: \'source\' must be "files" or an import path "module:function" (e.g. '
            f'"mypkg.tasks:make"), got {source!r}'
        )
    return module, function


def _importable_here() -> None:
    # As `python -m` does: modules in the current folder import; appended, so they never shadow installed ones.
    # Spawned workers inherit sys.path, so they find the same module.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())


def load_factory(task: str, source: str) -> Callable:
    module_name, function = factory_path(task, source)
    _importable_here()
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any failure to import the user's module is theirs to fix, in one line
        detail = f"{type(err).__name__}: {err}".splitlines()[0]
        raise ConfigError(
            f"task {task!r}: cannot import {module_name!r} for source {source!r} from {os.getcwd()} ({detail})"
        ) from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ConfigError(f"task {task!r}: module {module_name!r} has no function {function!r} (source {source!r})")
    return factory


def factory_for(task: str, source: object) -> Callable:
    return files.make if source == FILES else load_factory(task, source)


def identity(task: str, options: dict) -> dict[str, object] | None:
    """What the stored study records of a task of your own: for a factory its import path and the
    hash of its module's source, for files the hash of every data file; None for a built-in task."""
    source = options.get("source")
    if source is None:
        return None
    if source == FILES:
        path = options.get("path")
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(
                f"task {task!r}: source \"files\" needs option 'path' (an .npz, .csv, .parquet or a folder of them)"
            )
        found = files.data_files(Path(path))
        return {"source": FILES, "sha256": {split: _file_hash(file) for split, file in sorted(found.items())}}
    module_name, _ = factory_path(task, source)
    _importable_here()
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception as err:  # noqa: BLE001 - a parent package that fails to import, a bad name
        spec, reason = None, f"{type(err).__name__}: {err}".splitlines()[0]
    else:
        reason = "no such module"
    if spec is None:
        raise ConfigError(
            f"task {task!r}: cannot import {module_name!r} for source {source!r} from {os.getcwd()} ({reason})"
        )
    origin = Path(spec.origin) if spec.origin and spec.has_location else None
    return {"source": source, "module_sha256": _file_hash(origin) if origin and origin.is_file() else None}


def path_options(task: str, options: dict) -> list[str]:
    """The options of a task that name files or folders, found from the study file's folder: `path`
    (the built-in readers', source = "files"'s, and a factory's of that name), and any option your
    factory annotates as a path (os.PathLike or pathlib.Path, alone or in a union)."""
    names = {"path"}
    source = options.get("source")
    strings = [key for key, value in options.items() if isinstance(value, str) and key not in ("path", "source")]
    if source is not None and source != FILES and strings:  # only then is the factory imported, to read its annotations
        factory = load_factory(task, source)
        try:
            hints = typing.get_type_hints(factory)
        except Exception:  # noqa: BLE001 - annotations that do not resolve: the factory's check_options says so later
            hints = {}
        names |= {key for key in strings if _is_path_hint(hints.get(key))}
    return sorted(name for name in names if isinstance(options.get(name), str))


def _is_path_hint(hint) -> bool:
    arms = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    return any(isinstance(arm, type) and issubclass(arm, (os.PathLike, Path)) for arm in arms)


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
