"""Checking a study file's task options against the task factory's own signature, so a typo or a
wrong type fails at once with the allowed keys, not deep inside a build or as a silent default."""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable

from ...errors import ConfigError


def check_options(task: str, factory: Callable, options: dict) -> None:
    """ConfigError for an unknown key, a value of the wrong type or a missing required option.

    A factory of your own may leave options unannotated (any value) or take **options (any key)."""
    signature = inspect.signature(factory)
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # noqa: BLE001 - a user's factory with annotations that do not resolve: check names only
        hints = {}
    parameters = {n: p for n, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if "seed" not in parameters and not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        raise ConfigError(f"task {task!r}: its factory must take a keyword argument 'seed' (make(*, seed, **options))")
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    allowed = [name for name in parameters if name != "seed"]
    for key, value in options.items():
        if key not in allowed:
            if takes_any:
                continue
            raise ConfigError(f"task {task!r} has no option {key!r}; its options: {', '.join(allowed) or 'none'}")
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(
                f"task {task!r}: option {key!r} must be {_describe(hints[key])}, got {value!r} ({type(value).__name__})"
            )
    missing = [n for n, p in parameters.items() if p.default is p.empty and n not in options and n != "seed"]
    if missing:
        summary = (factory.__doc__ or "").strip().splitlines()[0]
        raise ConfigError(f"task {task!r} needs option {', '.join(missing)}: {summary}")


def _arms(hint) -> tuple:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _matches(value, hint) -> bool:
    for arm in _arms(hint):
        if typing.get_origin(arm) is list:
            (item,) = typing.get_args(arm) or (object,)
            if isinstance(value, list) and all(item is object or _matches(v, item) for v in value):
                return True
            continue
        if arm is object or arm is typing.Any:
            return True
        if arm is type(None) and value is None:
            return True
        if arm is bool and isinstance(value, bool):
            return True
        if arm is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if arm is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if arm in (str, os.PathLike) and isinstance(value, arm):
            return True
    return False


def _describe(hint) -> str:
    names = {
        type(None): "None",
        os.PathLike: "a path",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
    }
    described = []
    for arm in _arms(hint):
        if typing.get_origin(arm) is list:
            (item,) = typing.get_args(arm) or (object,)
            described.append(
                f"a list of {_describe(item).removeprefix('a ').removeprefix('an ')}s"
                if item is not object
                else "a list"
            )
        else:
            described.append(names.get(arm, getattr(arm, "__name__", str(arm))))
    return " or ".join(described)
