"""The fast path of `odyssey.LSTM`: a C++ kernel per direction, built on first use.

`dispatch.use_kernel` decides per call, `function.forward_sequence` runs the kernel,
`pack_function.packed_direction` runs it for a pack of trials (odyssey.model.pack), `build.load`
compiles and caches it, `empty_cache` returns its idle buffers.
"""

from .build import KernelUnavailable, load
from .dispatch import BACKENDS, check_backend, empty_cache, use_kernel
from .function import forward_sequence

__all__ = ["BACKENDS", "KernelUnavailable", "check_backend", "empty_cache", "forward_sequence", "load", "use_kernel"]
