"""Errors the CLI shows as one line (no traceback): each says what is wrong and where."""


class Interrupted(RuntimeError):
    """Ctrl-C or SIGTERM: finished trials are stored, the running ones are queued to resume from their checkpoints."""


class WorkerFailed(RuntimeError):
    """A worker process stopped on an error; finished trials are kept."""


# ValueError covers bad study files, task options, storages and datasets; OSError covers paths.
USER_ERRORS = (ValueError, OSError, Interrupted, WorkerFailed)
