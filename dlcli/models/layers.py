"""Building blocks shared by the model families."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import jax
import jax.numpy as jnp
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


# The keep probability of every Dropout layer while a train step runs for a member of a stack whose
# members differ in their dropout rate (dlcli compare, dlcli tune): data, not a constant of the program.
_carried_keep: contextvars.ContextVar = contextvars.ContextVar("carried_keep", default=None)


@contextlib.contextmanager
def carried_dropout(keep: jax.Array | None) -> Iterator[None]:
    """Within this block, Dropout layers keep units with probability ``keep`` (None: their own rate)."""
    token = _carried_keep.set(keep)
    try:
        yield
    finally:
        _carried_keep.reset(token)


class Dropout(nnx.Dropout):
    """``nnx.Dropout`` whose rate may come from the train state (see :func:`carried_dropout`).

    With its own rate it is ``nnx.Dropout``; with a carried keep probability
    it draws the same mask from the same key, so that a member of a stack
    trains exactly as its own run would.
    """

    def __call__(self, inputs: jax.Array, *, deterministic: bool | None = None, rngs=None) -> jax.Array:
        keep = _carried_keep.get()
        deterministic = self.deterministic if deterministic is None else deterministic
        if keep is None or deterministic:
            return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
        key = (rngs or self.rngs)()
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        mask = jnp.broadcast_to(jax.random.bernoulli(key, p=keep, shape=shape), inputs.shape)
        return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))


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
