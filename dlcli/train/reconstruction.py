"""The reconstruction step: an autoencoder learns to give back its input."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dlcli.tasks import Task
from dlcli.train.step import LossFn, TrainState, augment_batch, unless_padding, weight_penalty


def make_reconstruction_step(graphdef: nnx.GraphDef, loss_fn: LossFn, optimizer: optax.GradientTransformation,
                             task: Task, l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
    """``step(state, x, y, w) -> (state, sums)``; the target is the clean (augmented) input itself.

    The model's ``train_outputs(x)`` gives the reconstructions (of corrupted
    inputs when denoising) and a per-example penalty (sparsity or KL), which
    is added to the reconstruction error. ``sums`` also carries the
    reconstruction error alone (``reconstruction_loss``).
    """

    def step(state: TrainState, x: jax.Array, y: jax.Array, w: jax.Array) -> tuple[TrainState, dict]:
        count = w.sum()
        state, x = augment_batch(state, x, augment)

        def objective(params):
            model = nnx.merge(graphdef, params, state.rest, copy=True)
            outputs, penalty = model.train_outputs(x)  # (B, ...), (B,)
            errors = loss_fn(outputs, x)  # (B,)
            losses = errors + penalty
            data_loss = (losses * w).sum() / jnp.maximum(count, 1.0)
            _, _, rest = nnx.split(model, nnx.Param, ...)
            return data_loss + weight_penalty(params, l1, l2), (data_loss, losses, errors, rest)

        (_, (data_loss, losses, errors, rest)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params, value=data_loss)
        new = TrainState(optax.apply_updates(state.params, updates), rest, opt_state, state.step + 1, state.key)
        new = unless_padding(count, new, state)
        return new, {"loss": (losses * w).sum(), "reconstruction_loss": (errors * w).sum(), "count": count}

    return step
