"""Building the kernel: under one lock, rebuilt when a cached build will not load, a failure remembered on disk."""

import contextlib
import types

import pytest

from odyssey.model.kernel import build


@pytest.fixture
def compiles(monkeypatch):
    """Count builds; each 'build' writes a library file and returns a stand-in module."""
    calls = []

    def fake_compile(name, directory):
        calls.append(name)
        (directory / f"{name}.so").write_bytes(b"built")
        return types.ModuleType(name)

    monkeypatch.setattr(build, "_compile", fake_compile)
    monkeypatch.setattr(build, "_import", lambda name, library: types.ModuleType(name))
    return calls


def test_the_cached_build_is_looked_at_and_loaded_only_under_the_lock(tmp_path, compiles, monkeypatch):
    held = []

    @contextlib.contextmanager
    def lock(path):
        held.append(True)
        yield
        held.pop()

    def checked_import(name, library):
        assert held, "loaded outside the lock: a build still being written could be imported"
        return types.ModuleType(name)

    monkeypatch.setattr(build, "_exclusive", lock)
    monkeypatch.setattr(build, "_import", checked_import)
    directory = tmp_path / "odyssey_lstm_x"
    build._load(directory)
    build._load(directory)
    assert compiles == ["odyssey_lstm_x"]  # built once, loaded from the cache after


def test_a_cached_build_that_fails_to_load_is_rebuilt(tmp_path, compiles, monkeypatch):
    directory = tmp_path / "odyssey_lstm_x"
    directory.mkdir()
    (directory / "odyssey_lstm_x.so").write_bytes(b"half written")

    def broken_import(name, library):
        if library.read_bytes() == b"half written":
            raise ImportError("invalid ELF header")
        return types.ModuleType(name)

    monkeypatch.setattr(build, "_import", broken_import)
    assert build._load(directory).__name__ == "odyssey_lstm_x"
    assert compiles == ["odyssey_lstm_x"]


def test_a_failed_build_is_remembered_on_disk_until_the_tools_change(tmp_path, monkeypatch, capsys):
    attempts = []

    def no_compiler(name, directory):
        attempts.append(name)
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(build, "_compile", no_compiler)
    monkeypatch.setattr(build, "_tools", lambda: "c++=None ninja=/usr/bin/ninja")
    directory = tmp_path / "odyssey_lstm_x"
    for _ in range(3):  # three processes, or three runs
        with pytest.raises(build.KernelUnavailable, match="command not found"):
            build._load(directory)
    assert len(attempts) == 1 and capsys.readouterr().err.count("compiling") == 1
    monkeypatch.setattr(build, "_tools", lambda: "c++=/usr/bin/c++ ninja=/usr/bin/ninja")  # a compiler was installed
    with pytest.raises(build.KernelUnavailable):
        build._load(directory)
    assert len(attempts) == 2
