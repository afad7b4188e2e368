"""Measuring on a shared machine: candidates alternate with their reference and every comparison is
the median of per-round ratios, so a busy spell slows both sides of a ratio instead of one side of
a table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def seconds(fn: Callable[[], object], repeat: int = 1, clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    for _ in range(repeat):
        fn()
    return (clock() - start) / repeat


def alternate(
    reference: Callable[[], object],
    candidates: dict[str, Callable[[], object]],
    *,
    rounds: int,
    sample_s: float = 0.01,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, dict[str, tuple[float, float]]]:
    """Median reference time, and per candidate (median time, median of time / reference time),
    each candidate timed right after its own reference sample. `clock` may be time.process_time
    for single-threaded runs on a busy machine: CPU time does not count the slices others take."""
    for fn in (reference, *candidates.values()):  # warm up: first calls allocate and build
        fn()
        fn()
    repeat = max(1, round(sample_s / max(seconds(reference, clock=clock), 1e-6)))
    ref_times, times, ratios = [], {n: [] for n in candidates}, {n: [] for n in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            ref = seconds(reference, repeat, clock)
            own = seconds(fn, repeat, clock)
            ref_times.append(ref)
            times[name].append(own)
            ratios[name].append(own / ref)
    median = statistics.median
    return median(ref_times), {n: (median(times[n]), median(ratios[n])) for n in candidates}


def matmul_peak_gflops(size: int = 1024, tries: int = 20, clock: Callable[[], float] = time.perf_counter) -> float:
    """The best float32 matmul rate of this run, on all of torch's threads: the ceiling to quote."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(seconds(lambda: torch.mm(a, b), clock=clock) for _ in range(tries))
    return 2 * size**3 / best / 1e9


def saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes autograd keeps from forward to backward while fn runs a forward (torch exposes no CPU
    allocator statistics): per storage, the extent its saved tensors span. The extent, not the
    storage: odyssey's kernel hands out views of larger pooled buffers."""
    extents: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = tensor.untyped_storage().data_ptr()
        end = (tensor.storage_offset() + tensor.numel()) * tensor.element_size()
        extents[key] = max(extents.get(key, 0), end)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(extents.values())
