"""The compiled kernel for the model tests that run it."""

import shutil

import pytest

from odyssey.model.kernel import build


@pytest.fixture(scope="module")
def kernel():
    """The built kernel; skipped only where there is no C++ toolchain: a build that fails here is a failure."""
    try:
        return build.load()
    except build.KernelUnavailable as error:
        if shutil.which("c++") is None or shutil.which("ninja") is None:
            pytest.skip(f"no C++ toolchain here: {error}")
        raise
