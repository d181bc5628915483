"""Warm up what a run needs only at its end, while the device trains.

Importing tensorboardX and matplotlib and loading matplotlib's fonts take
most of a second; a run needs them only once it trains, to write its
epochs' scalars and to draw its figures. A
background thread does that work while the main thread waits on XLA
(compiling and training release the GIL), so the end of a run does not pay
for it. :func:`ready` joins the thread before the first use.
"""

from __future__ import annotations

import io
import threading

_thread: threading.Thread | None = None


def _warm() -> None:
    try:
        import tensorboardX.record_writer  # noqa: F401  (the epochs' scalars)
        from matplotlib.figure import Figure

        figure = Figure(figsize=(1, 1))
        figure.subplots().set_title("warm")  # loads the font and its glyph cache
        figure.savefig(io.BytesIO(), format="png", dpi=10)
    except Exception:  # a failure here only costs the time it would have saved; the real use reports it
        pass


def start() -> None:
    """Begin warming up in the background (once per process)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_warm, name="dlcli-preload", daemon=True)
        _thread.start()


def ready() -> None:
    """Wait for the warm-up, if one was started, so that only one thread uses matplotlib at a time."""
    if _thread is not None:
        _thread.join()
