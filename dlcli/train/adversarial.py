"""The adversarial step: one compiled update of a GAN's generator and discriminator.

Both players' gradients are taken at the same parameters and applied in one
optimizer update (simultaneous gradient descent): the discriminator's from
its loss on real examples (label 1) and fakes (label 0), the generator's
from the non-saturating loss -log D(G(z)) (Goodfellow et al., 2014), whose
gradient does not vanish while the discriminator still wins easily. Each
network's Adam moments are its own; ``[optimizer] discriminator = {...}``
gives the discriminator its own optimizer settings too (see
:func:`dlcli.optim.build_optimizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dlcli.models.gan import player
from dlcli.train.step import LossFn, TrainState, augment_batch, unless_padding, weight_penalty

if TYPE_CHECKING:
    from dlcli.tasks import Task  # a type only: the tasks choose their steps from this module


def make_adversarial_step(graphdef: nnx.GraphDef, loss_fn: LossFn, optimizer: optax.GradientTransformation,
                          task: Task, l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
    """``step(state, x, y, w) -> (state, sums)`` for a :class:`dlcli.models.gan.GAN`; ``y`` is unused."""

    def step(state: TrainState, x: jax.Array, y: jax.Array, w: jax.Array) -> tuple[TrainState, dict]:
        count = w.sum()
        state, x = augment_batch(state, x, augment)
        model = nnx.merge(graphdef, state.params, state.rest, copy=True)
        z = model.noise(x.shape[0])  # (B, noise_dim), one draw shared by both players
        _, _, rest = nnx.split(model, nnx.Param, ...)  # the noise stream advanced
        real, fake = jnp.ones(x.shape[0]), jnp.zeros(x.shape[0])

        def mean(losses):
            return (losses * w).sum() / jnp.maximum(count, 1.0)

        def discriminator_objective(params):
            gan = nnx.merge(graphdef, params, rest, copy=True)
            fakes = jax.lax.stop_gradient(gan.generate(z))
            losses = loss_fn(gan(x), real) + loss_fn(gan(fakes), fake)  # (B,)
            return mean(losses) + weight_penalty(params, l1, l2), losses

        def generator_objective(params):
            gan = nnx.merge(graphdef, params, rest, copy=True)
            losses = loss_fn(gan(gan.generate(z)), real)  # (B,): fool the discriminator
            return mean(losses) + weight_penalty(params, l1, l2), losses

        (_, d_losses), d_grads = jax.value_and_grad(discriminator_objective, has_aux=True)(state.params)
        (_, g_losses), g_grads = jax.value_and_grad(generator_objective, has_aux=True)(state.params)
        grads = jax.tree_util.tree_map_with_path(
            lambda path, g, d: g if player(path) == "generator" else d, g_grads, d_grads)
        value = mean(d_losses + g_losses)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params, value=value)
        new = state._replace(params=optax.apply_updates(state.params, updates), rest=rest, opt_state=opt_state,
                             step=state.step + 1)
        new = unless_padding(count, new, state)
        return new, {"loss": ((d_losses + g_losses) * w).sum(), "discriminator_loss": (d_losses * w).sum(),
                     "generator_loss": (g_losses * w).sum(), "count": count}

    return step
