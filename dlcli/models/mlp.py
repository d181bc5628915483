"""Perceptron and multi-layer perceptron."""

from __future__ import annotations

import math

from flax import nnx

from dlcli.activations import ActivationSpec, pieces_per_unit
from dlcli.errors import DlcliError
from dlcli.models.layers import Activation, Dropout, Flatten, Sequential


def perceptron(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs) -> nnx.Module:
    """One linear layer: Rosenblatt's perceptron (its threshold is the task's output head)."""
    return Sequential(Flatten(), nnx.Linear(math.prod(in_shape), out_dim, rngs=rngs))


def mlp(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, hidden: list[int] = [64],
        activation: ActivationSpec = "relu", dropout: float = 0.0, batch_norm: bool = False) -> nnx.Module:
    """Dense layers with a non-linearity between them; the output layer is linear (logits).

    Args:
      hidden: the width of each hidden layer, e.g. ``[100]`` or ``[64, 64]``.
      activation: the hidden non-linearity, a name or ``{kind = ..., ...}``; with
        ``{kind = "maxout", pieces = k}`` each hidden layer computes k linear pieces per unit.
      dropout: drop probability after each hidden activation (training only).
      batch_norm: normalise each hidden layer's pre-activations over the batch.
    """
    if any(size < 1 for size in hidden):
        raise DlcliError(f"[model] hidden = {hidden}: every layer needs at least 1 unit.")
    if not 0.0 <= dropout < 1.0:
        raise DlcliError(f"[model] dropout = {dropout}: a drop probability, from 0 (off) up to, not including, 1.")
    layers: list[nnx.Module] = [Flatten()]
    width = math.prod(in_shape)
    pieces = pieces_per_unit(activation)  # maxout: k pre-activations per unit, reduced by the max
    for size in hidden:
        layers.append(nnx.Linear(width, size * pieces, rngs=rngs))
        if batch_norm:
            layers.append(nnx.BatchNorm(size * pieces, rngs=rngs))
        layers.append(Activation(activation, pieces_allocated=True))
        if dropout:
            layers.append(Dropout(dropout, rngs=rngs))
        width = size
    layers.append(nnx.Linear(width, out_dim, rngs=rngs))
    return Sequential(*layers)
