"""A run's figures, drawn by a second process that was getting ready while the run trained.

Importing matplotlib and loading its fonts take over half a second, and
drawing a run's figures a third of one; both hold the interpreter lock, so a
thread of the training process would only take turns with the tracing and
bookkeeping of the run. :func:`start` launches a Python process that imports
matplotlib on another core while the run builds, compiles and trains;
:func:`send` hands it the figures to draw (functions of
:mod:`dlcli.report.plots` and their arguments) and the run goes on writing
its last files; :func:`wait` returns once the figures are written. Should
that process be gone, or fail, the figures are drawn in this one, where an
error shows as it is.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

# (function of dlcli.report.plots, or "module:function" of another figure module; args, kwargs)
Call = tuple[str, tuple[Any, ...], dict[str, Any]]
_process: subprocess.Popen | None = None
_pending: list[Call] = []  # sent, drawn here should the process fail
_sending: threading.Thread | None = None


def start(preload: tuple[str, ...] = ()) -> None:
    """Launch the figure process (once; a process that cannot be launched leaves drawing to this one).

    ``preload``: modules its calls will need, imported while this process works (a study's Optuna analysis).
    """
    global _process
    if _process is not None and _process.poll() is None:
        return
    package_root = str(Path(__file__).resolve().parents[2])  # where `import dlcli` finds this dlcli
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    try:  # close_fds=False lets Python use posix_spawn (Python's own descriptors are not inherited anyway):
        # forking a process that holds jax costs 50 ms, spawning 4 ms
        _process = subprocess.Popen([sys.executable, "-m", "dlcli.report.figure_process", *preload], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,
                                    env={**os.environ, "PYTHONPATH": path})
    except OSError:
        _process = None


def send(calls: list[Call]) -> None:
    """Hand ``calls`` to the figure process, which draws them while this process goes on; calls sent later are
    drawn after (or beside) them, and :func:`wait` ends it."""
    global _sending
    if not calls:
        return
    _pending.extend(calls)
    if _process is not None:
        payload = pickle.dumps(calls)  # now: the caller may change its objects afterwards
        _sending = threading.Thread(target=_deliver, args=(_process, payload, _sending), name="dlcli-figures",
                                    daemon=True)
        _sending.start()  # the pipe takes the payload as fast as the process reads, once it is ready


def _deliver(process: subprocess.Popen, payload: bytes, before: threading.Thread | None) -> None:
    if before is not None:  # payloads arrive whole and in order
        before.join()
    try:
        process.stdin.write(payload)
        process.stdin.flush()
    except (OSError, ValueError):  # it is gone (a broken pipe): wait() draws here
        pass


def wait() -> None:
    """Return once the figures sent are written: by the figure process, or drawn here if it failed or is none."""
    global _process, _pending, _sending
    process, calls, sending = _process, _pending, _sending
    _process, _pending, _sending = None, [], None
    if process is not None:
        if sending is not None:
            sending.join()
        if stop_process(process) == 0:
            return
    draw(calls)


def drawer(name: str):
    """The function a :data:`Call` names."""
    module, _, function = name.rpartition(":")
    return getattr(importlib.import_module(module or "dlcli.report.plots"), function)


def stop() -> None:
    """End a figure process that was not needed (the run failed or stopped before its figures)."""
    global _process, _pending, _sending
    process, sending = _process, _sending
    _process, _pending, _sending = None, [], None
    if sending is not None:  # what was sent is drawn
        sending.join()
        stop_process(process)
    elif process is not None:  # nothing to draw: no need to let it finish loading matplotlib
        process.kill()
        process.wait()


def stop_process(process: subprocess.Popen) -> int:
    """Close the process's input, on which it draws what it has and exits; its exit code."""
    try:
        process.stdin.close()
    except OSError:  # gone, its input unread
        pass
    return process.wait()


def serve() -> None:
    """The figure process: import and warm matplotlib, then draw what arrives on stdin (nothing, at its end)."""
    import io

    from matplotlib.figure import Figure

    from dlcli.report import plots  # noqa: F401  (imported while the run trains, not once it has ended)

    figure = Figure(figsize=(1, 1))
    figure.subplots().set_title("warm")  # loads the font and its glyph cache
    figure.savefig(io.BytesIO(), format="png", dpi=10)
    for module in sys.argv[1:]:  # see start(preload=...)
        importlib.import_module(module)
    drawing = []  # (forked copy, its calls)
    while True:  # each payload as it comes: a run sends its curves before it judges its weights
        try:
            calls = pickle.load(sys.stdin.buffer)
        except EOFError:
            break
        drawing += draw_in_two(calls)
    for child, calls in drawing:  # a copy that failed leaves its figures to this process, where an error shows
        if os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) != 0:
            draw(calls)


def draw_in_two(calls: list[Call]) -> list[tuple[int, list[Call]]]:
    """Draw ``calls``, every other one by a forked copy of this process when the machine has a second core:
    drawing holds the interpreter lock, and the run only waits for its figures by then. Returns the copy
    still drawing, and its calls."""
    theirs, mine = calls[1::2], calls[0::2]  # the first call is the largest figure (a run's curves)
    child = os.fork() if theirs and (os.cpu_count() or 1) > 1 and hasattr(os, "fork") else None
    if child == 0:
        code = 1
        try:
            draw(theirs)
            code = 0
        finally:
            os._exit(code)
    draw(mine if child else calls)
    return [(child, theirs)] if child else []


def draw(calls: list[Call]) -> None:
    for name, args, kwargs in calls:
        drawer(name)(*args, **kwargs)


if __name__ == "__main__":
    serve()
    os._exit(0)  # every file is written and closed; the run waits for this exit, not for matplotlib's teardown
