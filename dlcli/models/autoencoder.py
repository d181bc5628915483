"""Autoencoders: an encoder compresses x to a small code, a decoder rebuilds x from it.

Training minimises the reconstruction error (mse, or binary cross-entropy
for inputs in [0, 1]); the narrow code forces the network to keep what is
common to the data. Options from the lecture's zoo:

- ``denoising``: Gaussian noise of this standard deviation corrupts the
  input during training while the target stays clean, so the code must
  capture structure rather than copy pixels.
- ``sparse``: an L1 penalty of this weight on the code's activations, so
  that few code units are active for any one input.
- ``vae``: the encoder outputs a Gaussian (mean, log-variance) per input; a
  sample of it is decoded, and a KL term pulls the Gaussians towards N(0, 1)
  so that decoding N(0, 1) noise gives new, plausible samples.

Every model here implements ``train_outputs(x) -> (outputs, penalty)`` (the
reconstruction step's contract) besides ``__call__`` (evaluation), ``encode``
and ``decode``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.activations import ActivationSpec
from dlcli.errors import DlcliError
from dlcli.models.layers import Activation, Sequential


def dense_stack(widths: list[int], activation: ActivationSpec, rngs: nnx.Rngs) -> Sequential:
    """Linear layers through ``widths`` with the activation between them (none after the last)."""
    layers: list[nnx.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nnx.Linear(a, b, rngs=rngs))
        if i < len(widths) - 2:
            layers.append(Activation(activation))
    return Sequential(*layers)


class Autoencoder(nnx.Module):
    """x (B, ...) -> flatten -> encoder -> code (B, latent) -> decoder -> (B, ...) reconstruction logits."""

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], latent: int, activation: ActivationSpec,
                 denoising: float, sparse: float, rngs: nnx.Rngs):
        size = math.prod(in_shape)
        self.in_shape = tuple(in_shape)
        self.latent = latent
        self.encoder = dense_stack([size, *hidden, latent], activation, rngs)
        self.decoder = dense_stack([latent, *reversed(hidden), size], activation, rngs)
        self.denoising, self.sparse = denoising, sparse
        self.rngs = nnx.Rngs(noise=rngs.dropout())  # the corruption noise, a stream of its own

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x.reshape(x.shape[0], -1))  # (B, latent)

    def decode(self, code: jax.Array) -> jax.Array:
        return self.decoder(code).reshape(code.shape[0], *self.in_shape)  # (B, ...)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))

    def train_outputs(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Reconstructions of the (corrupted) inputs and the per-example sparsity penalty (B,)."""
        if self.denoising:
            x = x + self.denoising * jax.random.normal(self.rngs.noise(), x.shape)
        code = self.encode(x)
        return self.decode(code), self.sparse * jnp.abs(code).sum(axis=1)


class VAE(nnx.Module):
    """Variational autoencoder (Kingma & Welling, 2014): the code is a sample of N(mean, exp(log_var))."""

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], latent: int, activation: ActivationSpec,
                 beta: float, rngs: nnx.Rngs):
        size = math.prod(in_shape)
        self.in_shape = tuple(in_shape)
        self.latent = latent
        self.trunk = Sequential(*dense_stack([size, *hidden], activation, rngs).layers, Activation(activation))
        width = hidden[-1] if hidden else size
        self.mean = nnx.Linear(width, latent, rngs=rngs)
        self.log_var = nnx.Linear(width, latent, rngs=rngs)
        self.decoder = dense_stack([latent, *reversed(hidden), size], activation, rngs)
        # The loss is a mean over the input's values, so the KL (a sum over the code) is divided by
        # their number: the same balance as the ELBO, scaled by 1/size.
        self.kl_weight = beta / size
        self.rngs = nnx.Rngs(noise=rngs.dropout())

    def encode(self, x: jax.Array) -> jax.Array:
        """The code's mean (B, latent): where the input sits in the latent space."""
        return self.mean(self.trunk(x.reshape(x.shape[0], -1)))

    def decode(self, code: jax.Array) -> jax.Array:
        return self.decoder(code).reshape(code.shape[0], *self.in_shape)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.decode(self.encode(x))

    def train_outputs(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Reconstructions of sampled codes and the per-example KL(q(z|x) || N(0, 1)) penalty (B,)."""
        h = self.trunk(x.reshape(x.shape[0], -1))
        mean, log_var = self.mean(h), self.log_var(h)  # (B, latent) each
        code = mean + jnp.exp(0.5 * log_var) * jax.random.normal(self.rngs.noise(), mean.shape)  # reparameterised
        kl = 0.5 * (jnp.exp(log_var) + mean ** 2 - 1.0 - log_var).sum(axis=1)
        return self.decode(code), self.kl_weight * kl

    def sample(self, key: jax.Array, count: int) -> jax.Array:
        """Decoded N(0, 1) codes: (count, ...) output logits."""
        return self.decode(jax.random.normal(key, (count, self.latent)))


def check_latent(latent: int, hidden: list[int]) -> None:
    if latent < 1 or any(h < 1 for h in hidden):
        raise DlcliError("[model]: latent and every hidden width must be >= 1.")


def autoencoder(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, hidden: list[int] = [128],
                latent: int = 16, activation: ActivationSpec = "relu", denoising: float = 0.0,
                sparse: float = 0.0) -> nnx.Module:
    """A dense autoencoder; the decoder mirrors the encoder.

    Args:
      hidden: encoder widths from the input inwards, e.g. ``[256, 64]``.
      latent: size of the code (2 lets you plot the latent space).
      activation: the hidden non-linearity.
      denoising: standard deviation of the Gaussian noise added to training inputs (0 = off).
      sparse: weight of the L1 penalty on the code's activations (0 = off).
    """
    check_latent(latent, hidden)
    if denoising < 0 or sparse < 0:
        raise DlcliError("[model]: denoising and sparse must be >= 0.")
    return Autoencoder(in_shape, hidden, latent, activation, denoising, sparse, rngs)


def vae(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, hidden: list[int] = [128], latent: int = 2,
        activation: ActivationSpec = "relu", beta: float = 1.0) -> nnx.Module:
    """A variational autoencoder; decoding N(0, 1) noise generates new samples.

    Args:
      hidden: encoder widths from the input inwards.
      latent: size of the Gaussian code.
      activation: the hidden non-linearity.
      beta: weight of the KL term (1 = the ELBO; more = smoother latent space, blurrier reconstructions).
    """
    check_latent(latent, hidden)
    return VAE(in_shape, hidden, latent, activation, beta, rngs)
