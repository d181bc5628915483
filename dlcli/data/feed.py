"""Feeds: training rows delivered to the engine chunk by chunk, instead of resident on the devices.

A run whose training split fits memory keeps it on the devices and gathers
each batch there (:class:`dlcli.engine.driver.Engine`'s resident path). A
:class:`Feed` serves the rest: data streamed from disk, and the share of one
process in a multi-process run, where no process holds the whole data set.

Chunk ``c`` of epoch ``e`` is rows ``[c * rows, (c + 1) * rows)`` of this
process's order for that epoch, a pure function of (seed, epoch, process), so
that ``--resume`` mid-epoch continues bit-identically. Every process serves
the same number of chunks per epoch (:attr:`Feed.chunks_per_epoch`); rows past
the end of a share are padded with real examples of weight 0, as
:func:`dlcli.train.batches.epoch_indices` pads a resident epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import numpy as np

from dlcli.data.aligned import zeros_aligned


STREAM_CHUNK_ROWS = 1 << 18  # rows a streamed call trains on (per process): about 30 MB of HIGGS, a fraction of a second
# A share held in memory is cut into smaller chunks: each is a copy, and two are alive (the one training and the
# one placed ahead), so at 10M HIGGS events a process held 2 x 30 MB for chunks; a call is still 64 steps at batch 1024.
SHARE_CHUNK_ROWS = 1 << 16


class Chunk(NamedTuple):
    x: np.ndarray  # (rows, *input_shape) float32, preprocessed
    y: np.ndarray  # (rows, *target_shape): int32 labels or float32 targets
    w: np.ndarray  # (rows,) float32: 1 for a real example, 0 for padding


class Feed(Protocol):
    examples: int  # training examples per epoch, over all processes
    local_examples: int  # this process's share of them
    largest_share: int  # the largest process share: it sets every process's chunks per epoch
    description: str  # one line for the console and summary.json: source, method, buffer
    chunk_rows: int  # about how many rows of this process's share one call trains on

    def chunks(self, epoch: int, start: int, rows: int) -> Iterator[Chunk]:
        """Chunks ``start, start + 1, ...`` of ``epoch`` (from 1), each of ``rows`` rows, to the epoch's end."""
        ...

    def close(self) -> None:
        """Stop any background reading."""
        ...

    def release(self) -> None:
        """Let go of the training rows held in memory once a run is done with them: a released feed serves
        no more chunks (a run's final report reads only its held-out rows)."""
        ...


def taken_aligned(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x[idx]`` on fresh pages: JAX on a CPU places it in place, where NumPy's own allocation (16 bytes past
    a page) is copied, one more chunk of memory while the device holds the last one."""
    out = zeros_aligned((len(idx), *x.shape[1:]))
    np.take(x, idx, axis=0, out=out)
    return out


def chunks_per_epoch(feed: Feed, rows: int) -> int:
    return max(1, math.ceil(feed.largest_share / rows))


class ArrayFeed:
    """A process's share held in memory as arrays: shuffled per (seed, epoch) like a resident epoch.

    Made by :meth:`read_later`, the share is read when the first chunk is
    wanted: after the training program compiled, so that the compiler's
    working memory and the share's never add up (a run's peak, BENCHMARKS.md).
    """

    def __init__(self, x: np.ndarray | None, y: np.ndarray | None, seed: int, largest_share: int | None = None,
                 examples: int | None = None, process: int = 0, processes: int = 1, local_examples: int | None = None):
        self.x, self.y, self.seed = x, y, seed
        self._read: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
        # One process shuffles as a resident run does (dlcli.train.batches.epoch_indices), so the two agree.
        self.process = process if processes > 1 else None
        self.local_examples = len(x) if local_examples is None else local_examples
        self.largest_share = largest_share or self.local_examples
        self.examples = examples or self.local_examples
        self.description = f"{self.local_examples:,} rows in memory"
        self.chunk_rows = SHARE_CHUNK_ROWS

    @classmethod
    def read_later(cls, read: Callable[[], tuple[np.ndarray, np.ndarray]], local_examples: int, seed: int,
                   **shares) -> "ArrayFeed":
        """A feed of the ``local_examples`` rows ``read()`` returns as (x, y), called for the first chunk."""
        feed = cls(None, None, seed, local_examples=local_examples, **shares)
        feed._read = read
        return feed

    def order(self, epoch: int) -> np.ndarray:
        key = [self.seed, epoch] if self.process is None else [self.seed, epoch, self.process]
        order = np.arange(self.local_examples, dtype=np.int32)  # permutation()'s order, in half its memory
        np.random.default_rng(key).shuffle(order)
        return order

    def chunks(self, epoch: int, start: int, rows: int) -> Iterator[Chunk]:
        if self._read is not None:
            (self.x, self.y), self._read = self._read(), None
        order, n = self.order(epoch), self.local_examples
        for c in range(start, chunks_per_epoch(self, rows)):
            at = np.arange(c * rows, (c + 1) * rows)
            idx = order[at % n]  # past the end, padding: the order again from its start (no copy of the order)
            yield Chunk(taken_aligned(self.x, idx), self.y[idx], (at < n).astype(np.float32))

    def close(self) -> None:
        pass

    def release(self) -> None:
        # new empty arrays, not views (a view keeps its base): the share's memory goes with its last reference
        self._read = None
        self.x = None if self.x is None else np.empty((0, *self.x.shape[1:]), self.x.dtype)
        self.y = None if self.y is None else np.empty((0, *self.y.shape[1:]), self.y.dtype)
