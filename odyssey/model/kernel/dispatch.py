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

from .build import KernelUnavailable, load

BACKENDS = ("auto", "fast", "reference")
ENV = "ODYSSEY_BACKEND"

_warned = False


class KernelFallback(RuntimeWarning):
    """The kernel is unavailable and the reference path runs instead (a study's runner reports it once, its workers not again)."""


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


def supports(inputs: Tensor) -> bool:
    """float32/float64 on CPU, outside torch.func transforms (vmap would need a batching rule)."""
    return (
        inputs.device.type == "cpu"
        and inputs.dtype in (torch.float32, torch.float64)
        and inputs.shape[0] > 0
        and torch._C._functorch.maybe_current_level() is None
    )


def use_kernel(backend: str | None, inputs: Tensor) -> bool:
    choice = chosen_backend(backend)
    if choice == "reference":
        return False
    if choice == "fast":
        if not supports(inputs):
            raise ValueError(f"backend 'fast' runs float32/float64 on CPU; got {inputs.dtype} on {inputs.device}")
        load()  # raises KernelUnavailable with the compiler's message
        return True
    return supports(inputs) and _kernel_builds()


def _kernel_builds() -> bool:
    global _warned
    try:
        load()
        return True
    except KernelUnavailable as error:
        if not _warned:
            _warned = True
            warnings.warn(f"{error}; falling back to the slower reference LSTM (set {ENV}=reference to silence this)", KernelFallback, stacklevel=4)
        return False
