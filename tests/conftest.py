"""Fixtures shared by the test folders: the repository, the command line, a task cache per test, the
tiny study most end-to-end tests run, and PostgreSQL.

The tests are grouped as the package is: analysis/, model/, study/, tasks/, training/, replication/,
and here the top-level modules (cli.py, console.py, optuna_private.py). A fixture only one folder
uses lives in that folder's conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]

# The study most end-to-end tests run: two variants of the vowels task, small enough for seconds a trial.
TINY_STUDY = """
name = "tiny"
tasks = ["vowels"]
variants = ["V", "CIFG"]
trials = 2
seed = 3
[training]
batch_size = {batch_size}
max_epochs = {max_epochs}
patience = 50
[space]
hidden_size = {{ low = 4, high = 8, log = true }}
learning_rate = {{ low = 1e-3, high = 1e-2, log = true }}
"""


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository: cli.py, README.md, examples/, studies/, benchmarks/."""
    return ROOT


@pytest.fixture(scope="session")
def full_tests() -> bool:
    """ODYSSEY_FULL_TESTS=1: the slow checks at full size; otherwise (CI too) trimmed, each saying how."""
    return os.environ.get("ODYSSEY_FULL_TESTS") == "1"


@pytest.fixture(scope="session")
def odyssey_command() -> list[str]:
    """The start of a command line that runs this checkout's `odyssey` (for Popen and run alike)."""
    return [sys.executable, str(ROOT / "cli.py")]


@pytest.fixture(scope="session")
def cli(odyssey_command):
    """Run `odyssey ARGS` in a subprocess; with check, a non-zero exit fails the test showing both streams."""

    def run(
        *args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        result = subprocess.run(
            [*odyssey_command, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"odyssey {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """Task data built in this test's own folder (ODYSSEY_CACHE_DIR), for it and the workers it starts."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ODYSSEY_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def storage_url(tmp_path) -> str:
    """A SQLite storage in this test's folder (s.db, created by whatever opens it first)."""
    return f"sqlite:///{tmp_path}/s.db"


@pytest.fixture
def tiny_study(tmp_path):
    """Write TINY_STUDY as tiny.toml in a folder (tmp_path unless given), with its settings changed or text
    appended; returns its path."""

    def write(
        folder: Path | None = None, *, batch_size: int = 32, max_epochs: int = 2, extra: str = "", trials: int = 2
    ) -> Path:
        path = (folder or tmp_path) / "tiny.toml"
        path.write_text(
            TINY_STUDY.format(batch_size=batch_size, max_epochs=max_epochs).replace("trials = 2", f"trials = {trials}")
            + extra
        )
        return path

    return write


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """One PostgreSQL server for the session: ODYSSEY_TEST_POSTGRES (set by .ci/run), or started here by
    .ci/postgres.sh when running as root; the tests that need it skip, saying why, when neither works."""
    url = os.environ.get("ODYSSEY_TEST_POSTGRES")
    if url:
        return url
    if os.geteuid() != 0:
        pytest.skip(
            "no PostgreSQL: set ODYSSEY_TEST_POSTGRES, or run as root so .ci/postgres.sh can install and start one"
        )
    started = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh")], capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        pytest.skip(f"no PostgreSQL could be started: {started.stderr.strip().splitlines()[-1:]}")
    return started.stdout.strip().splitlines()[-1]


@pytest.fixture
def postgres(postgres_server) -> str:
    """A fresh database per test on the shared server, dropped afterwards."""
    name = f"odyssey_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    yield postgres_server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as con:
        con.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
