"""Only dlcli speaks: other libraries' output goes to the run's log file (or to stderr with ``-v``).

Libraries dlcli uses talk in three ways, each caught where it starts:

- Python logging (absl, orbax, jax) and the ``warnings`` module: one
  handler on the root logger. Lines logged before a run directory exists
  are held in memory; once training holds a run directory they go to its
  ``libraries.log``. Commands without a run directory drop them.
- Native lines on stdout: Gloo, the collectives of a multi-process CPU run,
  prints its connection lines from C++ whenever it connects, which would
  land in front of a ``--json`` result. The process's stdout descriptor is
  pointed at a temporary file (copied into ``libraries.log``) and Python's
  ``sys.stdout`` at a copy of the real one, so only dlcli writes there.
- Native lines on stderr: XLA's own logging is turned down to errors
  (``TF_CPP_MIN_LOG_LEVEL``, unless the user set it); an error from native
  code still shows, because the user must see why a process died.

With ``-v`` everything is shown on stderr, as the libraries wrote it; stdout
stays dlcli's.
"""

from __future__ import annotations

import atexit
import collections
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

LOG_NAME = "libraries.log"
HELD_LINES = 1000  # lines kept before a run directory exists; a runaway library cannot fill memory


class LibraryLog(logging.Handler):
    """Formats every record; holds the lines until a run directory's log file is known, then appends there."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.held: collections.deque[str] = collections.deque(maxlen=HELD_LINES)
        self.path: Path | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record) + "\n")
        except Exception:  # a log line must never break training
            self.handleError(record)

    def write(self, text: str) -> None:
        if self.path is None:
            self.held.append(text)
            return
        try:
            with self.path.open("a") as file:  # opened per line: a killed process loses nothing written before
                file.write(text)
        except OSError:
            pass  # the folder is gone (a worker's scratch run) or full: library lines are not worth an error

    def attach(self, path: Path) -> None:
        self.path = path
        held, self.held = "".join(self.held), collections.deque(maxlen=HELD_LINES)
        if held:
            self.write(held)


class NativeStdout:
    """File descriptor 1 redirected to a temporary file, ``sys.stdout`` kept on the real stdout."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self.real = os.dup(1)
        self.spool = tempfile.TemporaryFile()  # unlinked: nothing is left behind
        os.dup2(self.spool.fileno(), 1)
        stream = sys.stdout
        sys.stdout = io.TextIOWrapper(open(self.real, "wb", closefd=False), encoding=stream.encoding,
                                      errors=stream.errors, line_buffering=stream.line_buffering)

    def to_stderr(self) -> None:
        """Show native lines as they come (``-v``), on stderr: stdout carries only dlcli's result."""
        os.dup2(2, 1)

    def drain_into(self, log: LibraryLog) -> None:
        """Move what the spool holds into the log."""
        spool = self.spool.fileno()
        size = os.fstat(spool).st_size
        if not size:
            return
        log.write(os.pread(spool, size, 0).decode(errors="replace"))
        os.ftruncate(spool, 0)
        os.lseek(spool, 0, os.SEEK_SET)  # descriptor 1 shares this offset: the next line starts the file again


_log: LibraryLog | None = None
_handler: logging.Handler | None = None
_native: NativeStdout | None = None


def capture_native_stdout() -> None:
    """Keep native libraries off stdout for the rest of the process (the ``dlcli`` program calls this first)."""
    global _native
    if _native is not None or sys.stdout is None:  # None: the caller closed stdout, there is nothing to keep clean
        return
    _native = NativeStdout()
    atexit.register(_drain)


def route(verbose: bool) -> None:
    """Send library output to the run's log file (or, ``verbose``, to stderr). Call before jax is imported."""
    global _log, _handler
    root = logging.getLogger()
    root.removeHandler(_handler)  # routed again (a second command in one process): replace, never stack
    if verbose:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        _log = None
        if _native is not None:
            _native.to_stderr()
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # XLA's C++ logging: errors only
        handler = _log = LibraryLog()
    _handler = handler
    root.addHandler(handler)
    logging.captureWarnings(True)  # warnings.warn(...) becomes a record of the py.warnings logger


def log_into(run_dir: Path) -> None:
    """From now on, library output goes to ``run_dir/libraries.log`` (held lines first)."""
    if _log is None:
        return
    _drain()
    _log.attach(run_dir / LOG_NAME)


def _drain() -> None:
    if _native is not None and _log is not None:
        _native.drain_into(_log)
