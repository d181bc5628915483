"""Background reading: the next item is produced on a thread while the current one is used.

Reading Parquet and converting columns with numpy release the GIL, so a
thread overlaps the read of the next window with the training step that
consumes the current one. At most ``alive`` items exist at once, counting
the one the consumer holds: with 2 that is double buffering, and the memory
of a streamed epoch stays at about two windows whatever the data set's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()
_POLL_S = 0.05  # how often a waiting producer checks whether it was closed


class Background(Generic[T]):
    """Iterate ``items`` on a daemon thread, at most ``alive`` items ahead of (and including) the consumer's.

    An exception raised while producing an item reaches the consumer at that
    item, with its own type and message. :meth:`close` stops the thread
    between items and waits for it: promptly, at the cost of at most one item.
    """

    def __init__(self, items: Generator[T, None, None], alive: int = 2):
        self._items = items
        self._ready: queue.Queue = queue.Queue()
        self._slots = threading.Semaphore(alive)
        self._stop = threading.Event()
        self._holding = False  # whether the consumer holds an item, that is a slot
        self._thread = threading.Thread(target=self._produce, name="dlcli-prefetch", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._slots.acquire(timeout=_POLL_S):
                    continue
                item = next(self._items, _DONE)
                self._ready.put(item)
                if item is _DONE:
                    return
        except BaseException as error:  # handed to the consumer, who raises it where it asked for the item
            self._ready.put(error)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._holding:  # the consumer is done with the item it held: its slot lets the next one be read
            self._holding = False
            self._slots.release()
        while True:
            try:
                item = self._ready.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._ready.empty():
                    raise StopIteration from None
        if item is _DONE:
            self._ready.put(_DONE)  # stay exhausted
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        self._holding = True
        return item

    def close(self) -> None:
        """Stop producing and wait for the thread; items not yet consumed are dropped."""
        self._stop.set()
        self._slots.release()  # a producer waiting for a slot wakes to see the stop
        self._thread.join()
        while not self._ready.empty():
            self._ready.get_nowait()
        self._items.close()  # runs the generator's own clean-up (its finally blocks)
