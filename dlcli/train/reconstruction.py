"""The reconstruction step: an autoencoder learns to give back its input."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import optax
from flax import nnx

from dlcli.train.step import LossFn, TrainState, augment_batch, descend

if TYPE_CHECKING:
    from dlcli.tasks import Task  # a type only: the tasks choose their steps from this module


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

        def per_example(model):
            outputs, penalty = model.train_outputs(x)  # (B, ...), (B,)
            errors = loss_fn(outputs, x)  # (B,)
            return errors + penalty, errors

        new, losses, errors = descend(graphdef, optimizer, state, w, count, per_example, l1, l2)
        return new, {"loss": (losses * w).sum(), "reconstruction_loss": (errors * w).sum(), "count": count}

    return step
