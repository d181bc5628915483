"""The compiled hot loop: a pure train step, scanned over a chunk of batches.

The model lives in split form (graph definition + state pytrees). A chunk
is ``lax.scan`` over the batches that ``(S, B)`` index arrays gather from
data already on the device, so the host is touched once per chunk. A weight
``w`` per example masks the padding of a partial last batch; a step whose
batch is all padding leaves the state untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dlcli.train.penalties import weight_penalty  # noqa: F401  (step factories import it from here)

if TYPE_CHECKING:
    from dlcli.tasks import Task  # a type only: the tasks choose their steps from this module

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

# A chunk's batches are gathered in one go when that copy fits in this many
# bytes, and step by step inside the loop otherwise (many stacked members of a
# large data set), so that the copy never rivals the data set itself.
MAX_GATHERED_BYTES = 256 << 20


class TrainState(NamedTuple):
    params: Any  # nnx.State of nnx.Param
    rest: Any  # everything else: batch statistics, dropout RNG counters
    opt_state: Any
    step: jax.Array  # optimizer steps taken
    key: Any = None  # PRNG key of on-device data augmentation (None without augmentation)


def augment_batch(state: TrainState, x: jax.Array, augment: Callable | None) -> tuple[TrainState, jax.Array]:
    """Transform the batch on the device with a key split from ``state.key`` (seeded, so resumes are exact)."""
    if augment is None:
        return state, x
    key, batch_key = jax.random.split(state.key)
    return state._replace(key=key), augment(batch_key, x)


def unless_padding(count: jax.Array, new: TrainState, old: TrainState) -> TrainState:
    """The updated state, or the old one untouched when the batch was all padding (``count == 0``)."""
    return jax.tree.map(lambda a, b: jnp.where(count > 0, a, b), new, old)


def descend(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, state: TrainState, w: jax.Array,
            count: jax.Array, per_example: Callable, l1: Any, l2: Any) -> tuple[TrainState, jax.Array, Any]:
    """One optimizer update on the weighted mean of ``per_example(model) -> (losses (B,), aux)``.

    Returns the new state (the old one for an all-padding batch), the
    per-example losses and ``aux``. L1/L2 penalties join the objective, not
    the reported loss; the optimizer sees the data loss as ``value``.
    """

    def objective(params):
        model = nnx.merge(graphdef, params, state.rest, copy=True)  # fresh Variables: dropout/BN mutate them under grad
        losses, aux = per_example(model)
        data_loss = (losses * w).sum() / jnp.maximum(count, 1.0)
        _, _, rest = nnx.split(model, nnx.Param, ...)
        return data_loss + weight_penalty(params, l1, l2), (data_loss, losses, aux, rest)

    (_, (data_loss, losses, aux, rest)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params, value=data_loss)
    new = TrainState(optax.apply_updates(state.params, updates), rest, opt_state, state.step + 1, state.key)
    return unless_padding(count, new, state), losses, aux


def make_train_step(graphdef: nnx.GraphDef, loss_fn: LossFn, optimizer: optax.GradientTransformation, task: Task,
                    l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
    """``step(state, x, y, w) -> (state, sums)``: one optimizer update on one batch.

    ``augment(key, x) -> x`` (see :mod:`dlcli.data.augment`) transforms the batch
    on the device with a key split from ``state.key``, so augmentation is
    seeded and resumes exactly. The optimizer receives the batch loss as
    ``value`` (reduce-on-plateau reads it; other transformations ignore it).
    """

    def step(state: TrainState, x: jax.Array, y: jax.Array, w: jax.Array) -> tuple[TrainState, dict]:
        count = w.sum()
        state, x = augment_batch(state, x, augment)

        def per_example(model):
            logits = model(x)  # (B, O)
            return loss_fn(logits, y), logits  # (B,), (B, O)

        new, losses, logits = descend(graphdef, optimizer, state, w, count, per_example, l1, l2)
        sums = {"loss": (losses * w).sum(), "count": count}
        sums.update(task.step_sums(logits, y, w))
        return new, sums

    return step


def make_chunk_fn(step: Callable) -> Callable:
    """``run_chunk(state, x_all, y_all, idx, w) -> (state, sums)``, jitted, donating the state.

    Besides the summed metrics, ``sums`` carries two diagnostics that are not
    sums: ``nonfinite_at``, the index in the chunk of the first step whose
    loss was NaN or infinite (-1 if none), and ``last_finite_loss``, the mean
    batch loss of the step before it (NaN if there is none).
    """

    def run_chunk(state: TrainState, x_all: jax.Array, y_all: jax.Array, idx: jax.Array, w: jax.Array):
        if idx.size * (row_bytes(x_all) + row_bytes(y_all)) <= MAX_GATHERED_BYTES:
            # One gather for the whole chunk, then contiguous slices per step: a small
            # gather from the full data set inside the loop is split across threads
            # by XLA:CPU and cost more than the step's own arithmetic (HIGGS MLP,
            # benchmarks/higgs_vs_keras.py).
            batches = (x_all[idx], y_all[idx], w)  # (S, B, ...), (S, B, ...), (S, B)
            take = lambda batch: batch  # noqa: E731
        else:
            batches = (idx, w)
            take = lambda batch: (x_all[batch[0]], y_all[batch[0]], batch[1])  # noqa: E731

        def body(carry, batch):
            state, sums = carry
            x, y, wi = take(batch)  # (B, ...), (B, ...), (B,)
            state, batch_sums = step(state, x, y, wi)
            batch_loss = batch_sums["loss"] / jnp.maximum(batch_sums["count"], 1.0)
            return (state, jax.tree.map(jnp.add, sums, batch_sums)), batch_loss

        first = lambda: take(jax.tree.map(lambda a: a[0], batches))  # noqa: E731
        zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: step(state, *first())[1]))
        (state, sums), step_losses = jax.lax.scan(body, (state, zeros), batches)  # step_losses: (S,)
        bad = ~jnp.isfinite(step_losses)
        first_bad = jnp.where(bad.any(), jnp.argmax(bad), -1)
        previous = step_losses[jnp.maximum(first_bad - 1, 0)]
        sums = {**sums, "nonfinite_at": first_bad,
                "last_finite_loss": jnp.where(first_bad > 0, previous, jnp.nan)}
        return state, sums

    return jax.jit(run_chunk, donate_argnums=0)


def row_bytes(array: jax.Array) -> int:
    """Bytes of one example (one row along the first axis)."""
    return math.prod(array.shape[1:]) * array.dtype.itemsize


def make_predict_fn(graphdef: nnx.GraphDef) -> Callable:
    """``predict(params, rest, x_all, idx) -> (S, B, O)`` outputs for gathered batches, jitted."""

    def predict(params, rest, x_all, idx):
        model = nnx.merge(graphdef, params, rest)
        return jax.lax.map(lambda i: model(x_all[i]), idx)

    return jax.jit(predict)
