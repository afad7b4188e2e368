"""Compiling the C++ kernel on first use and caching it, so that no install step is ever needed.

The build is named by a hash of the sources, the flags, torch's and Python's versions: an edit or
an upgrade builds afresh and nothing stale is ever loaded. It lives under TORCH_EXTENSIONS_DIR
(default ~/.cache/torch_extensions). Flags are portable (no -march=native: the cache may be shared
between machines); the AVX-512 or AVX2 code is chosen at run time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType

import torch

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("recurrence.cpp", "isa_generic.cpp", "isa_avx2.cpp", "isa_avx512.cpp")
HEADERS = (
    "kernels.h", "sequence.h", "pool.h", "team.h", "tuner.h", "team_schedule.h", "library_schedule.h",
    "step.inc", "pack.inc", "vec_common.inc", "vecmath.inc", "vector_kernels.inc",
)  # fmt: skip
# -fopenmp compiles the kernel's thread team and torch's at::parallel_for; it is deliberately not a
# link flag, so the OpenMP calls bind to the runtime torch itself loaded: one thread pool, not two.
CFLAGS = ("-O3", "-fopenmp")


class KernelUnavailable(RuntimeError):
    """The C++ kernel could not be built or loaded here (no compiler, no ninja, a build error)."""


_loaded: dict[str, ModuleType | KernelUnavailable] = {}


@cache  # every forward asks for the kernel: hash the sources once per process
def build_name() -> str:
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update(name.encode() + b"\0" + (CSRC / name).read_bytes())
    digest.update(" ".join((*CFLAGS, torch.__version__, sys.version, sysconfig.get_platform())).encode())
    return f"odyssey_lstm_{digest.hexdigest()[:16]}"


def build_dir() -> Path:
    from torch.utils import cpp_extension

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()) / build_name()


def load() -> ModuleType:
    """The compiled kernel; builds it the first time (about half a minute). Raises KernelUnavailable,
    and remembers the failure so that a process tries to build at most once."""
    name = build_name()
    if name not in _loaded:
        try:
            _loaded[name] = _load(build_dir())
        except KernelUnavailable as error:
            _loaded[name] = error
    result = _loaded[name]
    if isinstance(result, KernelUnavailable):
        raise result
    return result


def _tools() -> str:
    """The compiler and ninja this build would use: a failure is retried once they change (installed, say)."""
    return f"c++={shutil.which(os.environ.get('CXX', 'c++'))} ninja={shutil.which('ninja')}"


def _load(directory: Path) -> ModuleType:
    """Load the cached build, or build it; all under one lock, so nobody loads a library still being written.

    A cached library that fails to load is rebuilt once; a build that failed is remembered on disk
    (`unavailable.txt`, with the tools it failed with), so other processes and later runs neither
    retry nor report it again until the compiler or ninja change.
    """
    name = directory.name
    library = directory / f"{name}{'.pyd' if os.name == 'nt' else '.so'}"  # what cpp_extension.load names it
    failure = directory / "unavailable.txt"
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory.with_suffix(".lock")):  # two processes building at once (pytest -n, studies)
        if failure.exists():
            reason, _, tools = failure.read_text().partition("\n")
            if tools == _tools():
                raise KernelUnavailable(reason)
            failure.unlink()
        if library.exists():
            try:
                return _import(name, library)
            except (ImportError, OSError) as err:
                print(f"odyssey: the cached C++ LSTM kernel did not load ({err}); rebuilding it", file=sys.stderr)
                shutil.rmtree(directory)
                directory.mkdir(parents=True)
        print(
            f"odyssey: compiling the C++ LSTM kernel into {directory} (first use only, about half a minute)",
            file=sys.stderr,
        )
        started = time.monotonic()
        try:
            module = _compile(name, directory)
        except Exception as err:  # noqa: BLE001 - compiler missing, ninja missing, compile or link error
            reason = (
                "odyssey's C++ LSTM kernel is unavailable: "
                f"{str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}"
            )
            failure.write_text(f"{reason}\n{_tools()}")
            raise KernelUnavailable(reason) from None
        print(f"odyssey: compiled the C++ LSTM kernel in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return module


def _compile(name: str, directory: Path) -> ModuleType:
    from torch.utils import cpp_extension

    (directory / "lock").unlink(
        missing_ok=True
    )  # torch's own lock file, left behind if a build was killed; we hold the real lock
    return cpp_extension.load(
        name=name,
        sources=[str(CSRC / s) for s in SOURCES],
        extra_cflags=list(CFLAGS),
        extra_include_paths=[str(CSRC)],
        build_directory=str(directory),
    )


def _import(name: str, library: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory file lock, released by the OS even if the holder dies mid-build."""
    with open(path, "w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: torch's own lock file still serialises the build
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
