"""Where a call's rows come from: the training split resident on the devices, or chunks fed by the host.

Both give the engine (:mod:`dlcli.engine.driver`) the same things for the
next ``count`` rows of an epoch: the data the program gathers from, each
row's batches (gather indices and weights, or the rows themselves), and
which rows end an epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from dlcli.data.feed import Feed
from dlcli.train.batches import Plan, epoch_indices

if TYPE_CHECKING:
    from dlcli.engine.driver import Engine


def advanced(epoch: int, chunk: int, rows: int, chunks: int) -> tuple[int, int]:
    """(epoch, chunk) ``rows`` rows after (epoch, chunk)."""
    position = (epoch - 1) * chunks + chunk + rows
    return position // chunks + 1, position % chunks


class ResidentRows:
    """The training split resident on the devices; a call's rows are gather indices into it, one order per
    member (member m's epoch as a run seeded ``seeds[m]`` orders it)."""

    def __init__(self, engine: Engine, x_all: jax.Array, y_all: jax.Array):
        self.engine, self.data = engine, (x_all, y_all)
        self._orders: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def example(self) -> tuple[np.ndarray, np.ndarray]:
        return self.engine.setup.data.splits["train"]

    def rows(self, epoch: int, chunk: int, count: int, padded: int) -> tuple[Any, tuple, np.ndarray, np.ndarray]:
        """The resident data, and indices, weights, epoch-end and active flags of the next ``count`` rows,
        padded to the call's ``padded`` rows."""
        engine = self.engine
        plan, members = engine.layout.plan, engine.members
        idx = np.zeros((padded, members, plan.steps_per_chunk, plan.batch_size), np.int32)
        weight = np.zeros(idx.shape, np.float32)
        ends, active = np.zeros(padded, bool), np.zeros(padded, bool)
        for g in range(count):
            if epoch not in self._orders:
                self._orders = {epoch: self.epoch_order(epoch)}  # only the epoch in progress is kept
            idx[g], weight[g] = (a[:, chunk] for a in self._orders[epoch])
            ends[g], active[g] = chunk == plan.chunks - 1, True
            epoch, chunk = advanced(epoch, chunk, 1, plan.chunks)
        placement = engine.setup.placement
        return self.data, (placement.put_batches(idx), placement.put_batches(weight)), ends, active

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(K, chunks, S, B) indices and weights of every member's epoch."""
        engine = self.engine
        pairs = [epoch_indices(engine.examples, engine.layout.plan, seed, epoch) for seed in engine.seeds]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def shapes(self) -> None:
        """None: a call's index arrays are made with its rows (see :meth:`FedRows.shapes`)."""
        return None

    def prefetch(self, epoch: int, chunk: int) -> None:
        pass

    def close(self) -> None:
        pass


class FedRows:
    """Rows fed by the host from a :class:`~dlcli.data.feed.Feed`, one chunk a call, shared by every member.

    The next chunk is read and placed on the devices while the current call
    runs (:meth:`prefetch`), so the devices wait on the feed only when it is
    slower than training. In a multi-process run each process places its own
    share of every batch: the global batch is assembled from per-process
    shards, and no process holds another's rows.
    """

    def __init__(self, feed: Feed, plan: Plan, placement, epochs: int, held_out: dict[str, tuple],
                 input_shape: tuple[int, ...]):
        self.feed, self.plan, self.placement, self.epochs, self.held_out = feed, plan, placement, epochs, held_out
        self.input_shape = input_shape
        self._stream, self._at = None, None  # the open iterator and the (epoch, chunk) it yields next
        self._ready: tuple[tuple[int, int], tuple] | None = None

    def example(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows shaped as the chunks are: a held-out split's targets where there is one, rather than a read
        (its inputs may be on disk or spread over processes: their shape is the model's input shape)."""
        if self.held_out:
            y = next(iter(self.held_out.values()))[1]
            return np.zeros((1, *self.input_shape), np.float32), y[:1]
        first = next(iter(self.feed.chunks(1, 0, 1)))
        return first.x, first.y

    def shapes(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        """The placed (1, S, B, ...) inputs, targets and weights of a call, as :meth:`place` makes them, unread."""
        x, y = self.example()
        sharding = self.placement.local_rows_sharding
        batch = self.plan.batch_size * jax.process_count()
        return tuple(jax.ShapeDtypeStruct((1, self.plan.steps_per_chunk, batch, *shape), dtype, sharding=sharding)
                     for shape, dtype in ((x.shape[1:], np.float32), (y.shape[1:], y.dtype), ((), np.float32)))

    def rows(self, epoch: int, chunk: int, count: int, padded: int) -> tuple[Any, tuple, np.ndarray, np.ndarray]:
        ready, self._ready = self._ready, None
        placed = ready[1] if ready and ready[0] == (epoch, chunk) else self.place(epoch, chunk)
        return (), placed, np.array([chunk == self.plan.chunks - 1]), np.ones(1, bool)

    def prefetch(self, epoch: int, chunk: int) -> None:
        if epoch <= self.epochs:
            self._ready = ((epoch, chunk), self.place(epoch, chunk))

    def close(self) -> None:
        self._stream, self._at, self._ready = None, None, None
        self.feed.close()

    def place(self, epoch: int, chunk: int) -> tuple:
        """Chunk ``chunk`` of ``epoch`` as (1, S, B, ...) arrays on the devices."""
        if self._at != (epoch, chunk):
            self._stream = iter(self.feed.chunks(epoch, chunk, self.plan.steps_per_chunk * self.plan.batch_size))
        part = next(self._stream)
        self._at = (epoch, chunk + 1)  # an iterator serves one epoch: the next opens its own
        shape = (1, self.plan.steps_per_chunk, self.plan.batch_size)
        return tuple(self.placement.put_local_rows(a.reshape(*shape, *a.shape[1:])) for a in part)
