"""What the user can fix: the CLI prints these as one line and exits 2 (Interrupted: 130).

Anything else that escapes a command is a bug in odyssey and is shown as one, with where it happened.
They subclass ValueError so that library callers catching ValueError keep working.
"""


class OdysseyError(ValueError):
    """Something the user gave (a study file, option, path, dataset, storage) that cannot be used; one
    line says what and where."""


class ConfigError(OdysseyError):
    """A study file, task option or command-line option that is invalid."""


class DataError(OdysseyError):
    """A dataset the user pointed to that cannot be read: names the file, the array or field,
    and the first bad index."""


class Interrupted(OdysseyError):
    """Ctrl-C or SIGTERM: finished trials are stored, the running ones are queued to resume from their checkpoints."""


class WorkerFailed(OdysseyError):
    """A worker process stopped; finished trials are kept."""


class OdysseyWarning(UserWarning):
    """Something the user should know that stopped nothing: the CLI prints it as one line, 'warning: ...'."""


class WorkerDied(OdysseyWarning):
    """A worker process was killed; its trial went back to the queue and a new worker took its place."""


def first_line(err: BaseException) -> str:
    """What a one-line message shows of an error: its first line, or its type when it says nothing."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__
