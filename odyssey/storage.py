"""Opening Optuna storages: SQLite by default, any SQLAlchemy URL (PostgreSQL for many machines), or
`journal:///shared/path.log`, Optuna's JournalStorage on a filesystem all machines share (clusters
without a database server).

Heartbeats let a crashed worker's trial be found and retried; passwords never leave this module
unmasked. A storage URL is a contract of study (which writes) and analysis (which reads) alike:
both import this module, which imports neither.
"""

from __future__ import annotations

import contextlib
import random
import re
import tempfile
import time
import warnings
from pathlib import Path

from .errors import OdysseyError, first_line

HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
SQLITE_LOCK_TIMEOUT = 600
CREATION_ATTEMPTS = 10  # seconds a writer waits for SQLite's lock: as long as a slow transaction may take


class StorageError(OdysseyError):
    """A storage that cannot be opened, with a one-line reason and the password masked."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


JOURNAL = "journal://"


def journal_path(url: str) -> Path | None:
    return Path(url.removeprefix(JOURNAL)) if url.startswith(JOURNAL) else None


def checkpoint_folder(url: str, name: str) -> Path:
    """Where study `name` keeps its per-epoch checkpoints by default: beside an SQLite storage, under ./results
    for a server storage (share it for cross-machine resume)."""
    path = sqlite_path(url)
    return (path.parent if path is not None else Path("results")) / name / "checkpoints"


def _postgres_driver(url: str) -> str:
    """`postgresql://` with whichever driver is installed (SQLAlchemy would insist on psycopg 3)."""
    if not url.startswith("postgresql://"):
        return url
    for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        try:
            __import__(module)
        except ImportError:
            continue
        return f"postgresql+{dialect}://" + url.removeprefix("postgresql://")
    return url


def check_folder(url: str, *, create: bool, reading: bool = False) -> Path | None:
    """The file of a file storage, once its folder exists; `create` only for the default storage: a
    folder the user wrote that does not exist is a typo until proven otherwise. `reading` (status,
    report): a missing file is a study not run yet, whatever its folder."""
    path = sqlite_path(url) or journal_path(url)
    if reading and path is not None and not path.exists():
        raise StorageError(
            f"{url}: no storage yet (the file {path} does not exist): run the study first (odyssey run STUDY.toml), "
            "or give the --storage it ran with"
        )
    if path is not None and not path.parent.is_dir():
        if not create:
            raise StorageError(f"{url}: the folder {path.parent} does not exist (create it, or check the path)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(f"{url}: cannot create the folder {path.parent} ({err.strerror})") from None
    return path


def writable_folder(directory: Path, what: str) -> None:
    """Create `directory` if needed and check that files can be written there; `what` names it in the error (a
    command-line option, say)."""
    if directory.exists() and not directory.is_dir():
        raise OdysseyError(f"{what} {directory}: is a file; expected a folder (it is created if missing)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A probe of its own: with one fixed name, workers starting at once unlinked each other's probe
        # (tests/study/test_distributed.py's four workers: "No such file or directory", once in a CI run).
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OdysseyError(f"{what} {directory}: cannot write there ({err.strerror or err})") from None


def open_storage(url: str, *, must_exist: bool = False, create_folder: bool = False, on_stale=None):
    """An Optuna storage with heartbeats; `on_stale(study, trial)` requeues trials of dead workers.

    must_exist: for commands that only read (status, report), a missing file is an error rather
    than a new empty storage. create_folder: see check_folder.
    """
    import optuna
    import sqlalchemy.exc

    if url.startswith("postgres://"):  # Heroku's and libpq's spelling; SQLAlchemy knows only postgresql://
        raise StorageError(
            f"{mask_url(url)}: unknown storage scheme 'postgres://'; write postgresql://{mask_url(url).removeprefix('postgres://')}"
        )
    path = check_folder(url, create=create_folder, reading=must_exist)
    engine_kwargs: dict = {}
    if path is not None:
        if must_exist and not path.exists():
            raise StorageError(f"{url}: no such storage (the file {path} does not exist)")
        if not must_exist and url.startswith("sqlite:///"):
            _check_writable(url, path)
        if url.startswith(JOURNAL):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            try:
                return JournalStorage(JournalFileBackend(str(path)))
            except OSError as err:
                raise StorageError(f"{url}: cannot open the journal ({err.strerror})") from None
        engine_kwargs["connect_args"] = {"timeout": SQLITE_LOCK_TIMEOUT}
    elif url.startswith("postgresql"):
        engine_kwargs["pool_pre_ping"] = True
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    # Workers starting together on a new database race to create Optuna's schema; the losers'
    # errors (duplicate tables or types; SQLite says "table ... already exists") go away once the
    # winner commits, so try again.
    for attempt in range(CREATION_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5, and say so on every open
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    _postgres_driver(url),
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=on_stale,
                )
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as err:
            if not _lost_creation_race(err):
                raise StorageError(f"{mask_url(url)}: cannot open storage ({mask_url(first_line(err))})") from None
            if attempt == CREATION_ATTEMPTS - 1:
                raise StorageError(f"{mask_url(url)}: cannot create the schema ({first_line(err)})") from None
            time.sleep(random.uniform(0.2, 1.0))
    raise AssertionError("unreachable")


def _check_writable(url: str, path: Path) -> None:
    """A run writes to its SQLite file: a read-only one (or folder, where SQLite keeps its journal)
    is said before anything starts, not as SQLAlchemy's error from deep inside Optuna."""
    import os
    import sqlite3

    what = (
        f"{url}: cannot write to the storage, so odyssey run and prepare cannot use it (status and report only read it)"
    )
    if not os.access(path.parent, os.W_OK):
        raise StorageError(f"{what}: the folder {path.parent} is read-only")
    if not path.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=1, isolation_level=None)) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:  # a write that is rolled back: a read-only file refuses it (the lock alone it grants)
                connection.execute("CREATE TABLE odyssey_write_probe (x)")
            finally:
                connection.execute("ROLLBACK")
    except sqlite3.OperationalError as err:
        if "readonly" in str(err) or "read-only" in str(err) or not os.access(path, os.W_OK):
            raise StorageError(f"{what}: the file {path} is read-only") from None
        # locked by a running peer, say: not ours to judge here


def _lost_creation_race(err: Exception) -> bool:
    import sqlalchemy.exc

    if isinstance(err, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)):
        return True
    return isinstance(err, sqlalchemy.exc.OperationalError) and "already exists" in str(err)
