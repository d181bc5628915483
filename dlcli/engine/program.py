"""The compiled block: rows of batches for a stack of K members, epochs ended on the device.

A *row* is a run of optimizer steps (``S`` batches of ``B`` examples); it is
a whole epoch when the epoch is small, or a chunk of one when it is large.
One call runs up to ``G`` rows (a ``lax.scan``), so a small data set trains
many epochs per trip to the host. A row that ends an epoch also evaluates
the validation split, updates early stopping and keeps the best weights,
all on the device: the host only reads back one small record per epoch.

Members are stacked on a leading axis and trained by ``jax.vmap`` (a run is
a stack of one, run without the vmap). A member that stopped early or
diverged is frozen: its batches weigh nothing, which the step treats as
"leave the state untouched", so the others run on unchanged. A row whose
loss turns NaN or infinite leaves the member at its state before the row
(the last good one) and marks it diverged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.engine.metrics import split_metrics
from dlcli.engine.stopping import StopState, update_stop_state
from dlcli.engine.validation import model_outputs
from dlcli.optim import current_learning_rate
from dlcli.tasks import Task
from dlcli.train.early_stopping import EarlyStopping
from dlcli.train.step import TrainState

# A row's batches are gathered in one go when that copy fits in this many bytes,
# and step by step inside the loop otherwise (many stacked members of a large
# data set), so that the copy never rivals the data set itself.
MAX_GATHERED_BYTES = 256 << 20


class Carry(NamedTuple):
    """What one member carries from row to row (every leaf gets a leading (K,) axis in a stack)."""

    state: TrainState
    best: TrainState  # the weights of the best epoch so far
    stop: StopState
    sums: dict[str, jax.Array]  # the epoch's partial sums (loss, count, correct, ...)
    epoch: jax.Array  # i32, the epoch in progress, from 1
    diverged: jax.Array  # bool


@dataclass(frozen=True)
class EpochSpec:
    """What ends an epoch: the validation metrics, the monitor and the learning rate."""

    task: Task
    loss_fn: Callable
    eval_graph: nnx.GraphDef
    wanted: list[str]  # metrics computed on the validation split
    rule: EarlyStopping
    schedule: Callable[[jax.Array], jax.Array]


def step_loop(step: Callable, state: TrainState, data, rows, live: jax.Array):
    """Run ``step`` over a row's (S, B) batches: (state, sums, per-step mean losses (S,)).

    ``data`` is ``(x_all, y_all)``, resident on the devices, and ``rows`` the
    (S, B) gather indices and weights into it; or ``data`` is ``()`` and
    ``rows`` holds the batches themselves, (S, B, ...) inputs, targets and
    weights, fed by the host (:mod:`dlcli.data.feed`). A frozen member
    (``live`` False) weighs nothing.
    """
    if data:
        (x_all, y_all), (idx, w) = data, rows
        if idx.size * (row_bytes(x_all) + row_bytes(y_all)) <= MAX_GATHERED_BYTES:
            # One gather for the whole row, then contiguous slices per step: a small
            # gather from the full data set inside the loop is split across threads
            # by XLA:CPU and cost more than the step's own arithmetic (HIGGS MLP).
            batches = (x_all[idx], y_all[idx], w * live)  # (S, B, ...), (S, B, ...), (S, B)
            take = lambda batch: batch  # noqa: E731
        else:
            batches = (idx, w * live)
            take = lambda batch: (x_all[batch[0]], y_all[batch[0]], batch[1])  # noqa: E731
    else:
        x, y, w = rows
        batches, take = (x, y, w * live), (lambda batch: batch)

    def body(carry, batch):
        state, sums = carry
        state, batch_sums = step(state, *take(batch))
        batch_loss = batch_sums["loss"] / jnp.maximum(batch_sums["count"], 1.0)
        return (state, jax.tree.map(jnp.add, sums, batch_sums)), batch_loss

    first = take(jax.tree.map(lambda a: a[0], batches))
    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: step(state, *first)[1]))
    (state, sums), step_losses = jax.lax.scan(body, (state, zeros), batches)
    return state, sums, step_losses


def row_bytes(array: jax.Array) -> int:
    """Bytes of one example (one row along the first axis)."""
    return math.prod(array.shape[1:]) * array.dtype.itemsize


def outputs_on(eval_graph: nnx.GraphDef, state: TrainState, x) -> jax.Array:
    """The model's outputs on all of ``x`` (resident, on disk or spread over processes: see
    :mod:`dlcli.engine.validation`) in evaluation mode, in batches: (N, ...)."""
    return model_outputs(nnx.merge(eval_graph, state.params, state.rest), x)


def epoch_record(spec: EpochSpec, sums: dict[str, jax.Array], state: TrainState, val) -> dict[str, jax.Array]:
    """The epoch's numbers: training means from the sums, validation metrics, learning rate."""
    count = jnp.maximum(sums["count"], 1.0)
    record = {"loss": sums["loss"] / count}
    if "correct" in sums:
        record["accuracy"] = sums["correct"] / count
    record.update({key: value / count for key, value in sums.items() if key.endswith("_loss")})  # a GAN's two
    if val is not None:
        x_val, y_val = val
        metrics = split_metrics(spec.task, spec.loss_fn, spec.wanted, outputs_on(spec.eval_graph, state, x_val), y_val)
        record.update({f"val_{name}": value for name, value in metrics.items()})
    record["learning_rate"] = current_learning_rate(state.opt_state, spec.schedule, state.step)
    return record


def select(flag: jax.Array, new, old):
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), new, old)


def make_row_fn(step: Callable, spec: EpochSpec) -> Callable:
    """``row(carry, data, val, rows, ends) -> (carry, out)`` for one member (see :func:`step_loop`)."""

    @jax.jit
    def end_epoch(sums, state, val, stop, epoch, finished):
        record = epoch_record(spec, sums, state, val)
        new_stop, is_best = update_stop_state(spec.rule, stop, epoch, record[spec.rule.monitor])
        return record, select(finished, new_stop, stop), finished & is_best

    step = jax.jit(step)  # a jitted function is traced once per shapes: the shape probes below cost nothing

    def row(carry: Carry, data, val, rows, ends):
        live = ~(carry.stop.stopped | carry.diverged)
        state, sums, step_losses = step_loop(step, carry.state, data, rows, live)
        sums = jax.tree.map(jnp.add, carry.sums, sums)
        bad = ~jnp.isfinite(step_losses)
        diverged = live & (bad.any() | ~jnp.isfinite(sums["loss"]))
        first_bad = jnp.where(bad.any(), jnp.argmax(bad), 0)
        partial = jnp.where(carry.sums["count"] > 0, carry.sums["loss"] / jnp.maximum(carry.sums["count"], 1.0), jnp.nan)
        last_finite = jnp.where(first_bad > 0, step_losses[jnp.maximum(first_bad - 1, 0)], partial)
        state = select(diverged, carry.state, state)  # the last good state
        sums = select(diverged, carry.sums, sums)
        finished = ends & live & ~diverged

        operands = (sums, state, val, carry.stop, carry.epoch, finished)

        def no_end(_):
            record = jax.eval_shape(end_epoch, *operands)[0]  # traced once: the branch below reuses it
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), record), carry.stop, jnp.zeros((), bool)

        record, stop, is_best = jax.lax.cond(ends, lambda _: end_epoch(*operands), no_end, None)
        new = Carry(state, select(is_best, state, carry.best), stop,
                    select(finished, jax.tree.map(jnp.zeros_like, sums), sums),
                    carry.epoch + finished.astype(jnp.int32), carry.diverged | diverged)
        out = {"ended": finished, "diverged": diverged, "is_best": is_best, "stopped": stop.stopped,
               "nonfinite_at": first_bad, "last_finite_loss": last_finite, "record": record}
        return new, out

    return row


def make_block_fn(step: Callable, spec: EpochSpec, members: int, fed: bool = False) -> Callable:
    """``block(carry, data, val, rows, ends (G,), active (G,)) -> (carry, outs)``.

    ``rows`` has a leading (G,) axis: gather indices and weights (G, K, S, B)
    into the resident ``data``, one order per member; or, ``fed``, the batches
    themselves (G, S, B, ...), shared by every member. Jitted, donating the
    carry. ``outs`` holds one entry per row and member (leading axes (G, K));
    rows with ``active`` False, and rows after every member has stopped, are
    skipped.
    """
    row = make_row_fn(step, spec)
    if members > 1:
        row_of_stack = jax.vmap(row, in_axes=(0, None, None, None if fed else 0, None))
    else:  # a single run: the same program without the vmap, its (1,) axis dropped and restored for free
        def row_of_stack(carry, data, val, rows, ends):
            first = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
            return jax.tree.map(lambda a: a[None], row(first(carry), data, val, rows if fed else first(rows), ends))
    row_of_stack = jax.jit(row_of_stack)  # traced once: for the shapes of its outputs, then reused by the scan

    def train_block(carry: Carry, data, val, rows, ends, active):
        example = (jax.tree.map(lambda a: a[0], rows), ends[0])
        shapes = jax.eval_shape(lambda c: row_of_stack(c, data, val, *example)[1], carry)

        def body(carry, scanned):
            rows_g, ends_g, active_g = scanned
            running = active_g & ~(carry.stop.stopped | carry.diverged).all()
            skip = lambda c: (c, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))  # noqa: E731
            return jax.lax.cond(running, lambda c: row_of_stack(c, data, val, rows_g, ends_g), skip, carry)

        return jax.lax.scan(body, carry, (rows, ends, active))

    return jax.jit(train_block, donate_argnums=0)
