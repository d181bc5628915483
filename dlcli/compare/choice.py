"""The hidden activation as data, so that several activations share one compiled program.

A model's :class:`~dlcli.models.layers.Activation` layers hold their function
as a Python constant: each activation is a different program to compile.
``dlcli compare`` (and so compare-activations) swaps them for a
:class:`ChoiceActivation` that holds every compared function and picks one
with ``lax.switch`` on an index kept in the model's state. The architecture
(and so every compiled step) is then the same for all element-wise
activations; only the index differs, one per member of the stack.

Under ``vmap`` over members the switch evaluates every branch and selects
(an index may differ per member), which costs a few element-wise
operations per unit and saves a compilation per activation. The selected
branch's value and gradient are exactly the plain layer's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.assemble import Assembled
from dlcli.models.layers import Activation, Sequential


class ActivationIndex(nnx.Variable):
    """Which of a ChoiceActivation's functions is in use (part of the model state, not a parameter)."""


class ChoiceActivation(nnx.Module):
    def __init__(self, names: tuple[str, ...], fns: tuple[Callable, ...], index: int):
        self.names = names
        self.fns = fns
        self.index = ActivationIndex(jnp.asarray(index, jnp.int32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.lax.switch(self.index[...], self.fns, x)


def can_share(model: nnx.Module) -> bool:
    """Whether the hidden activations of ``model`` can be swapped (a Sequential with Activation layers)."""
    return isinstance(model, Sequential) and any(isinstance(layer, Activation) for layer in model.layers)


def with_choice(built: Assembled, names: Sequence[str], fns: Sequence[Callable], index: int) -> Assembled:
    """``built`` with every hidden Activation layer replaced by a ChoiceActivation set to ``index``.

    ``names`` and ``fns`` must be the same objects for every member that is to
    share a program: they are part of the graph definition.
    """
    model = built.model
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Activation):
            model.layers[i] = ChoiceActivation(tuple(names), tuple(fns), index)
    # The same split as dlcli.assemble.assemble: evaluation graph, then training graph and state.
    model.eval()
    eval_graph = nnx.graphdef(model)
    model.train()
    train_graph, params, rest = nnx.split(model, nnx.Param, ...)
    return dataclasses.replace(built, model=model, train_graph=train_graph, eval_graph=eval_graph, params=params,
                               rest=rest)


def rest_with_index(model: nnx.Module, index: int) -> nnx.State:
    """The non-parameter state of a :func:`with_choice` model, its ChoiceActivation layers set to ``index``
    (one member's state; the model serves every member of its seed)."""
    for layer in model.layers:
        if isinstance(layer, ChoiceActivation):
            layer.index[...] = jnp.asarray(index, jnp.int32)
    # A copy: the split state holds the model's own Variables, which the next member's index would overwrite.
    return jax.tree.map(lambda leaf: leaf, nnx.split(model, nnx.Param, ...)[2])
