"""Generative adversarial network (Goodfellow et al., 2014): two networks in one module.

The generator maps noise z ~ N(0, 1) to fake examples; the discriminator
outputs the logit that an example is real. They are trained against each
other (see :mod:`dlcli.train.adversarial`) until the discriminator cannot
tell them apart; at test time only the generator is kept. Calling the
module runs the discriminator, so evaluation reports how real the held-out
data looks to it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.activations import ActivationSpec
from dlcli.errors import DlcliError
from dlcli.models.autoencoder import dense_stack
from dlcli.models.layers import Flatten, Sequential


def player(path: tuple[Any, ...]) -> str:
    """'generator' or 'discriminator': the top-level submodule a parameter's pytree path starts in."""
    first = path[0]
    return str(getattr(first, "key", getattr(first, "name", first)))


class MinibatchStd(nnx.Module):
    """Appends the batch's spread (mean over features of the std over the batch) to every example.

    A generator that collapses onto a few modes makes batches of fakes that
    vary less than real batches; this one number lets the discriminator see
    it (Karras et al., 2018), so collapsing stops paying off.
    """

    def __call__(self, x: jax.Array) -> jax.Array:
        spread = jnp.std(x, axis=0).mean()  # scalar over the batch (B, F)
        return jnp.concatenate([x, jnp.broadcast_to(spread, (x.shape[0], 1))], axis=1)  # (B, F + 1)


class GAN(nnx.Module):
    def __init__(self, in_shape: tuple[int, ...], noise_dim: int, generator: list[int], discriminator: list[int],
                 activation: ActivationSpec, output: str, minibatch_std: bool, rngs: nnx.Rngs):
        size = math.prod(in_shape)
        self.in_shape = tuple(in_shape)
        self.noise_dim = noise_dim
        self.output = output
        self.generator = dense_stack([noise_dim, *generator, size], activation, rngs)
        head = [MinibatchStd()] if minibatch_std else []
        self.discriminator = Sequential(Flatten(), *head, *dense_stack([size + len(head), *discriminator, 1],
                                                                       activation, rngs).layers)
        self.rngs = nnx.Rngs(noise=rngs.dropout())  # the generator's input noise

    def noise(self, count: int) -> jax.Array:
        return jax.random.normal(self.rngs.noise(), (count, self.noise_dim))  # (B, noise_dim)

    def generate(self, z: jax.Array) -> jax.Array:
        """Fake examples (B, ...) from noise (B, noise_dim)."""
        fake = self.generator(z).reshape(z.shape[0], *self.in_shape)
        return jax.nn.sigmoid(fake) if self.output == "sigmoid" else fake

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.discriminator(x)  # (B, 1) logits: real vs fake


def gan(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, noise_dim: int = 16,
        generator: list[int] = [128, 128], discriminator: list[int] = [128, 128],
        activation: ActivationSpec = {"kind": "leaky_relu", "negative_slope": 0.2},
        output: Literal["linear", "sigmoid"] = "linear", minibatch_std: bool = True) -> nnx.Module:
    """A dense generator and discriminator.

    Args:
      noise_dim: size of the generator's noise input.
      generator: hidden widths of the generator.
      discriminator: hidden widths of the discriminator.
      activation: the hidden non-linearity of both (leaky ReLU keeps gradients flowing to the generator).
      output: ``sigmoid`` for data in [0, 1] such as images, ``linear`` for unbounded data.
      minibatch_std: let the discriminator see each batch's spread, against mode collapse.
    """
    if noise_dim < 1:
        raise DlcliError("[model]: noise_dim must be >= 1.")
    return GAN(in_shape, noise_dim, generator, discriminator, activation, output, minibatch_std, rngs)
