"""Activation functions by recipe name.

A recipe writes ``activation = "relu"`` or, for one with settings,
``activation = { kind = "leaky_relu", negative_slope = 0.1 }``. Each entry
builds an element-wise function; all are JAX primitives so they fuse into
the compiled step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlcli.errors import DlcliError
from dlcli.lazy import lazy
from dlcli.registry import Registry

jax = lazy("jax")  # the builders need jax when they run, not when a recipe is checked
jnp = lazy("jax.numpy")

# Traits the activation diagnostics read: ``saturates_beyond`` is the |z| beyond which the
# derivative is under 7% of its peak (sigma'(4) < 0.018, tanh'(2) < 0.071); ``flat_below_zero``
# marks functions that are flat (zero or nearly so) for z <= 0, so a unit never above 0 is dead.
ACTIVATIONS = Registry("activation")
ActivationSpec = str | dict[str, Any]


@ACTIVATIONS.register("sigmoid", saturates_beyond=4.0)
def sigmoid() -> Callable:
    return jax.nn.sigmoid


@ACTIVATIONS.register("tanh", saturates_beyond=2.0)
def tanh() -> Callable:
    return jnp.tanh


@ACTIVATIONS.register("relu", flat_below_zero=True)
def relu() -> Callable:
    return jax.nn.relu


@ACTIVATIONS.register("leaky_relu", flat_below_zero=True)
def leaky_relu(*, negative_slope: float = 0.01) -> Callable:
    return lambda x: jax.nn.leaky_relu(x, negative_slope)


@ACTIVATIONS.register("elu", flat_below_zero=True)
def elu(*, alpha: float = 1.0) -> Callable:
    return lambda x: jax.nn.elu(x, alpha)


@ACTIVATIONS.register("gelu", flat_below_zero=True)
def gelu() -> Callable:
    return jax.nn.gelu


@ACTIVATIONS.register("silu", flat_below_zero=True)
def silu() -> Callable:
    return jax.nn.silu


@ACTIVATIONS.register("softplus", flat_below_zero=True)
def softplus() -> Callable:
    return jax.nn.softplus


@ACTIVATIONS.register("linear")
def linear() -> Callable:
    return lambda x: x


@ACTIVATIONS.register("maxout")
def maxout(*, pieces: int = 2) -> Callable:
    """Each unit is the max of ``pieces`` linear pieces (Goodfellow et al., 2013).

    Not element-wise: the layer before it must emit ``units * pieces`` values,
    which :func:`pieces_per_unit` tells a model builder to allocate (the mlp
    does; :class:`dlcli.models.layers.Activation` refuses maxout elsewhere).
    """
    if pieces < 1:
        raise DlcliError(f"model.activation: maxout pieces = {pieces}; each unit needs at least 1 linear piece "
                         "(2 or more to be non-linear).")

    def fn(x):
        grouped = x.reshape(*x.shape[:-1], x.shape[-1] // pieces, pieces)  # (..., units, pieces)
        return grouped.max(axis=-1)

    return fn


def split_spec(spec: ActivationSpec) -> tuple[str, dict[str, Any]]:
    """``"relu"`` or ``{kind = "leaky_relu", negative_slope = 0.1}`` -> (name, settings)."""
    if isinstance(spec, str):
        return spec, {}
    settings = dict(spec)
    return settings.pop("kind", ""), settings


def pieces_per_unit(spec: ActivationSpec) -> int:
    """How many pre-activations each unit consumes: ``pieces`` for maxout, 1 for element-wise ones."""
    name, settings = split_spec(spec)
    if name != "maxout":
        return 1
    get_activation(spec)  # reports a bad setting before any layer is sized by it
    return ACTIVATIONS.validate(name, settings, where="model.activation")["pieces"]


def get_activation(spec: ActivationSpec, where: str = "model.activation") -> Callable:
    name, settings = split_spec(spec)
    return ACTIVATIONS.build(name, settings, where=where)


def check_activation(spec: ActivationSpec, where: str = "model.activation") -> None:
    """Raise :class:`DlcliError` for an unknown activation or a bad setting, without building it (or importing jax)."""
    name, settings = split_spec(spec)
    ACTIVATIONS.check_name(name, where=where)
    ACTIVATIONS.validate(name, settings, where=where)
