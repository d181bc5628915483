"""The compiled hot loop: a pure train step, scanned over a chunk of batches.

The model lives in split form (graph definition + state pytrees). A chunk
is ``lax.scan`` over the batches that ``(S, B)`` index arrays gather from
data already on the device, so the host is touched once per chunk. A weight
``w`` per example masks the padding of a partial last batch; a step whose
batch is all padding leaves the state untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dlcli.models.layers import carried_dropout
from dlcli.train.penalties import carried_penalty, weight_penalty  # noqa: F401  (step factories import it)

if TYPE_CHECKING:
    from dlcli.tasks import Task  # a type only: the tasks choose their steps from this module

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

class TrainState(NamedTuple):
    params: Any  # nnx.State of nnx.Param
    rest: Any  # everything else: batch statistics, dropout RNG counters
    opt_state: Any
    step: jax.Array  # optimizer steps taken
    key: Any = None  # PRNG key of on-device data augmentation (None without augmentation)
    # {"l1": (), "l2": ()} strengths carried as data, so that members of one program may differ in them
    # (dlcli compare); None: the strengths the step was built with.
    penalty: Any = None
    # The keep probability (1 - rate) of the model's Dropout layers, carried as data for the same reason;
    # None: the rate the model was built with.
    dropout: Any = None


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
        with carried_dropout(state.dropout):
            losses, aux = per_example(model)
        data_loss = (losses * w).sum() / jnp.maximum(count, 1.0)
        _, _, rest = nnx.split(model, nnx.Param, ...)
        penalty = weight_penalty(params, l1, l2) if state.penalty is None else carried_penalty(params, state.penalty)
        return data_loss + penalty, (data_loss, losses, aux, rest)

    (_, (data_loss, losses, aux, rest)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params, value=data_loss)
    new = state._replace(params=optax.apply_updates(state.params, updates), rest=rest, opt_state=opt_state,
                         step=state.step + 1)
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


def make_predict_fn(graphdef: nnx.GraphDef) -> Callable:
    """``predict(params, rest, x_all, idx) -> (S, B, O)`` outputs for gathered batches, jitted."""

    def predict(params, rest, x_all, idx):
        model = nnx.merge(graphdef, params, rest)
        return jax.lax.map(lambda i: model(x_all[i]), idx)

    return jax.jit(predict)
