"""Building blocks shared by the model families."""

from __future__ import annotations

import jax
from flax import nnx

from dlcli.activations import ActivationSpec, get_activation, split_spec
from dlcli.errors import DlcliError


class Sequential(nnx.Module):
    """Layers applied in order; ``dlcli summary`` reads them one by one."""

    def __init__(self, *layers: nnx.Module):
        self.layers = nnx.List(layers)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class Activation(nnx.Module):
    def __init__(self, spec: ActivationSpec, *, pieces_allocated: bool = False):
        """``pieces_allocated``: the layer before emits ``pieces`` values per unit, as maxout needs (mlp does)."""
        self.name = split_spec(spec)[0]
        if self.name == "maxout" and not pieces_allocated:
            raise DlcliError("model.activation = maxout: this model kind does not give its layers the extra linear "
                             "pieces maxout takes the max of. Use maxout with model.kind = \"mlp\", or another "
                             "activation here.")
        self.fn = get_activation(spec)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)


class Flatten(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)  # (B, ...) -> (B, F)
