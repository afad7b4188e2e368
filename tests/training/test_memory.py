"""keep_freed_memory: a training process reuses the memory it frees instead of page-faulting it in anew."""

import subprocess
import sys
import textwrap

import pytest

from odyssey.training.loop import keep_freed_memory

# 64 MiB buffers allocated, written and freed ten times, as a pack's gradients are each step: glibc's
# defaults mmap each (above its 32 MiB dynamic limit) and fault in all 16,384 pages every time.
PROGRAM = textwrap.dedent(
    """
    import resource, sys, torch
    from odyssey.training.loop import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else None
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(1 << 24); x.fill_(1); del x
    before = faults()
    for _ in range(10):
        x = torch.empty(1 << 24); x.fill_(1); del x
    print(applied, faults() - before)
    """
)


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True).stdout
    applied, count = out.split()
    return applied, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_buffers_are_reused_without_page_faults():
    applied, kept = faults("keep")
    if applied == "False":
        pytest.skip("this C library is not glibc: keep_freed_memory changes nothing")
    _, default = faults("default")
    assert default > 10 * 16_000  # every buffer faulted in again: 163,845 here
    # One or two of the ten here (16,384 or 32,768 faults: a small allocation may split the freed block; glibc
    # 2.36, 2026-12-07).
    assert kept <= 3 * 16_384, kept


def test_it_says_whether_it_applied():
    assert keep_freed_memory() in (True, False)
