"""Choosing between the C++ kernel and the autograd reference for one call.

backend: "auto" (the kernel where it applies and builds, else the reference), "fast" (the kernel
or an error), "reference". None defers to the environment variable ODYSSEY_BACKEND (default
"auto"), read at call time so that a test run or a study can switch without code changes.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor

from . import build
from .build import KernelUnavailable, load

BACKENDS = ("auto", "fast", "reference")
ENV = "ODYSSEY_BACKEND"

_warned: set[str] = set()  # what "auto" has already warned about, once per process


class KernelFallback(RuntimeWarning):
    """The kernel is unavailable and the reference path runs instead (a study's runner reports it once,
    its workers not again)."""


def check_backend(backend: str | None) -> str | None:
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} (or None for ${ENV}), got {backend!r}")
    return backend


def chosen_backend(backend: str | None) -> str:
    if backend is not None:
        return backend
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"{ENV} must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def unsupported(inputs: Tensor) -> str | None:
    """Why the kernel cannot run this call, or None when it can."""
    if torch.compiler.is_compiling():
        return "torch.compile cannot trace into the C++ kernel"
    if torch._C._functorch.maybe_current_level() is not None:
        return "the C++ kernel has no rule for torch.func transforms (vmap, grad, jacrev)"
    if inputs.device.type != "cpu":
        return f"there is no fused {inputs.device.type} kernel, only the CPU one"
    if inputs.dtype not in (torch.float32, torch.float64):
        return f"the C++ kernel runs float32/float64, not {inputs.dtype}"
    return None


def use_kernel(backend: str | None, inputs: Tensor) -> bool:
    choice = chosen_backend(backend)
    if choice == "reference":
        return False
    reason = unsupported(inputs)
    if choice == "fast":
        if reason is not None:
            raise ValueError(
                f"backend 'fast' runs float32/float64 on CPU outside torch.compile and torch.func: {reason}"
            )
        load()  # raises KernelUnavailable with the compiler's message
        return True
    if reason is not None:
        if inputs.device.type != "cpu":  # a user on a GPU should know this is the slow path
            _warn_once(
                inputs.device.type, f"odyssey.LSTM on {inputs.device.type}: {reason}; running the autograd reference"
            )
        return False
    return _kernel_builds()


def empty_cache() -> int:
    """Frees the kernel's idle pooled buffers (it keeps up to 512 MiB between calls so that big
    sequence buffers are not page-faulted in anew each step). Returns the bytes still pooled,
    all held by live autograd graphs. Never builds the kernel."""
    module = build._loaded.get(build.build_name())
    return module.empty_cache() if module is not None and not isinstance(module, KernelUnavailable) else 0


def _kernel_builds() -> bool:
    try:
        load()
        return True
    except KernelUnavailable as error:
        _warn_once(
            "build",
            f"{error}; falling back to the slower reference LSTM (set {ENV}=reference to silence this)",
            KernelFallback,
        )
        return False


def _warn_once(key: str, message: str, category: type[Warning] = RuntimeWarning) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, category, stacklevel=5)
