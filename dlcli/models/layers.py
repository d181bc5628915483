"""Building blocks shared by the model families."""

from __future__ import annotations

import jax
from flax import nnx

from dlcli.activations import ActivationSpec, get_activation, split_spec


class Sequential(nnx.Module):
    """Layers applied in order; ``dlcli summary`` reads them one by one."""

    def __init__(self, *layers: nnx.Module):
        self.layers = nnx.List(layers)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class Activation(nnx.Module):
    def __init__(self, spec: ActivationSpec):
        self.name = split_spec(spec)[0]
        self.fn = get_activation(spec)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)


class Flatten(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)  # (B, ...) -> (B, F)
