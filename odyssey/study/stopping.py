"""Stopping cleanly at any moment: Ctrl-C and SIGTERM raise KeyboardInterrupt and set one flag.

The flag is what makes a stop certain: where Python cannot raise (inside a destructor or a weakref
callback, say) or must not (while a trial is being claimed: `shielded`), the signal only sets it, and
the worker stops at its next check. Python reports such a lost KeyboardInterrupt as "Exception
ignored in ..." with a traceback; with the flag set it is no error, so `install` keeps it quiet.
A second signal never cuts the first stop's requeueing short.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator


class Stop:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.children: list = []  # worker processes to pass a SIGTERM on to (Ctrl-C reaches the whole group itself)
        self._shield = 0
        self._previous_hook = sys.unraisablehook

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)
            if sys.unraisablehook != self._unraisable:  # bound methods: equal, never identical
                self._previous_hook = sys.unraisablehook
                sys.unraisablehook = self._unraisable

    def _unraisable(self, unraisable) -> None:
        """A stop lost where Python could not raise it is carried on by the flag: nothing to report."""
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and self.event.is_set()):
            self._previous_hook(unraisable)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """install() for a while, with a fresh flag; the previous handlers come back after (a library caller's own)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook
        self.event.clear()
        self.install()
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous[0])
            signal.signal(signal.SIGTERM, previous[1])
            sys.unraisablehook = previous[2]

    def _handle(self, signum, frame) -> None:
        first = not self.event.is_set()
        self.event.set()
        for child in self.children:
            if child.is_alive():
                child.terminate()
        if first and not self._shield:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """No KeyboardInterrupt in here; the caller checks `event` afterwards."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1


STOP = Stop()


def die_with_parent(parent: int) -> None:
    """This process gets a SIGTERM (a clean stop) when `parent` dies, SIGKILL included, so no worker
    of a killed `odyssey run --jobs N` goes on as an orphan (a rerun then ran 2N workers on N cores).

    Linux: the kernel sends it (prctl PR_SET_PDEATHSIG; it fires when the thread that started this
    process ends, and the runner starts its workers from its main thread). Elsewhere a thread looks
    every second whether the parent is still this process's parent.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
            if os.getppid() != parent:  # it died before the request: nobody would send the signal
                os.kill(os.getpid(), signal.SIGTERM)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="odyssey-parent-watch", daemon=True).start()
