"""Ctrl-C and SIGTERM during training: save, say how to resume, exit 130 / 143.

A signal handler only records the request; the epoch driver acts on it at
the next chunk boundary (the state is consistent there, never mid-step),
checkpoints atomically and raises :class:`Interrupted`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from dlcli.errors import DlcliError


class Interrupted(DlcliError):
    """Training stopped by a signal after saving; exit code 128 + the signal number."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequests:
    """Context manager that turns SIGINT/SIGTERM into a flag while training runs."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum  # the first signal decides the exit code

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
