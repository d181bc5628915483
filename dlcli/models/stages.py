"""What each part of a model reads, so ``dlcli summary`` can trace shapes through it.

A plain :class:`Sequential` is one stage; the zoo's composite models are a
few stages each (encoder and decoder; generator and discriminator; each
recurrent layer and the head), every one with the input shape it sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.models.autoencoder import VAE, Autoencoder
from dlcli.models.gan import GAN
from dlcli.models.recurrent import Recurrent, scan_cell


@dataclass
class Stage:
    name: str  # a prefix for Sequential stages ("encoder."), else the row's name
    module: nnx.Module
    input: jax.ShapeDtypeStruct
    apply: Callable | None = None  # None: a Sequential, shown layer by layer


def struct(*shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def stages(model: nnx.Module, input_shape: tuple[int, ...]) -> Iterator[Stage]:
    """The stages of ``model`` for one example of ``input_shape`` (batch of 1)."""
    size = 1
    for n in input_shape:
        size *= n
    if isinstance(model, Autoencoder):
        yield Stage("encoder.", model.encoder, struct(1, size))
        yield Stage("decoder.", model.decoder, struct(1, model.latent))
    elif isinstance(model, VAE):
        yield Stage("encoder.", model.trunk, struct(1, size))
        width = model.mean.in_features
        yield Stage("mean: Linear", model.mean, struct(1, width), model.mean)
        yield Stage("log_var: Linear", model.log_var, struct(1, width), model.log_var)
        yield Stage("decoder.", model.decoder, struct(1, model.latent))
    elif isinstance(model, GAN):
        yield Stage("generator.", model.generator, struct(1, model.noise_dim))
        yield Stage("discriminator.", model.discriminator, struct(1, *input_shape))
    elif isinstance(model, Recurrent):
        yield from recurrent_stages(model, input_shape)
    else:
        yield Stage("", model, struct(1, *input_shape))


def recurrent_stages(model: Recurrent, input_shape: tuple[int, ...]) -> Iterator[Stage]:
    steps, features = input_shape
    for i, cell in enumerate(model.forward):
        kind = type(cell).__name__
        yield Stage(f"forward.{i}: {kind}({cell.hidden_features})", cell, struct(1, steps, features),
                    lambda x, cell=cell: scan_cell(cell, x)[0])
        if len(model.backward):
            back = model.backward[i]
            yield Stage(f"backward.{i}: {kind}({back.hidden_features}), reversed time", back,
                        struct(1, steps, features), lambda x, cell=back: scan_cell(cell, x, reverse=True)[0])
        features = cell.hidden_features * (2 if len(model.backward) else 1)
    yield Stage("head: Linear (last step)", model.head, struct(1, features), model.head)
