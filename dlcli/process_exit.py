"""Ending the ``dlcli`` process without tearing the interpreter down.

Once a command has finished, everything it owes the user is on disk and on
the terminal. What Python's normal shutdown still does (freeing every object
of the thousands of modules jax, flax, orbax and matplotlib load, and the
XLA client's destructors) takes half a second to a second after the last
file is written. The exit handlers still run (log files are drained and
flushed, a multi-process run leaves its coordinator), then the process ends.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Run the exit handlers, flush the standard streams and end the process with ``code``.

    While a non-daemon thread still runs, the normal exit (which waits for
    it) is kept.
    """
    if any(not thread.daemon and thread is not threading.main_thread() for thread in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed by the caller, or a broken pipe: nothing left to deliver
            pass
    os._exit(code)
