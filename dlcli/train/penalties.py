"""L1 and L2 weight penalties, for the whole network or per layer.

The lecture's regularisation term: the loss becomes
``data loss + l1 * sum |w| + l2 * sum w^2`` over weight matrices and
kernels only (``ndim > 1``); biases and normalisation scales are never
penalised. ``train.l1`` / ``train.l2`` is one number for every layer, or a
table keyed by the layer numbers ``dlcli summary`` prints, e.g.
``l2 = { "1" = 1e-3, "3" = 1e-4 }`` (layers not named get no penalty).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from dlcli.errors import DlcliError, choices_text

Strength = float | Mapping[str, float]


def layer_name(path: tuple) -> str:
    """The layer a parameter belongs to, as ``dlcli summary`` numbers it: ``layers/1/kernel`` -> ``"1"``."""
    parts = [str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key)))) for key in path]
    parts = [p for p in parts if p not in ("layers", "value")]
    return ".".join(parts[:-1])  # drop the parameter's own name (kernel, bias)


def weights_by_layer(params: Any) -> list[tuple[str, jax.Array]]:
    return [(layer_name(path), leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params) if leaf.ndim > 1]


def _strength(strength: Strength, layer: str) -> float:
    if not isinstance(strength, Mapping):
        return float(strength)
    matches = [key for key in strength if layer == key or layer.startswith(key + ".")]
    return float(strength[max(matches, key=len)]) if matches else 0.0


def weight_penalty(params: Any, l1: Strength, l2: Strength) -> jax.Array:
    """L1/L2 on weight matrices and kernels (ndim > 1), globally or per layer; biases are not penalised."""
    penalty = jnp.zeros(())
    for layer, weights in weights_by_layer(params):
        a, b = _strength(l1, layer), _strength(l2, layer)
        if a:
            penalty += a * jnp.abs(weights).sum()
        if b:
            penalty += b * jnp.square(weights).sum()
    return penalty


def carried_penalty(params: Any, strengths: Mapping[str, jax.Array]) -> jax.Array:
    """``l1 * sum |w| + l2 * sum w^2`` over every weight matrix, the strengths being arrays (traced, per member)."""
    weights = [w for _, w in weights_by_layer(params)]
    return (strengths["l1"] * sum(jnp.abs(w).sum() for w in weights)
            + strengths["l2"] * sum(jnp.square(w).sum() for w in weights))


def check_penalties(params: Any, l1: Strength, l2: Strength) -> None:
    """Every layer a per-layer ``train.l1``/``train.l2`` table names must hold weights."""
    layers = sorted({layer for layer, _ in weights_by_layer(params)})
    for key, strength in (("l1", l1), ("l2", l2)):
        if isinstance(strength, Mapping):
            unknown = [name for name in strength if not any(l == name or l.startswith(name + ".") for l in layers)]
            if unknown:
                raise DlcliError(f"train.{key} names layer(s) {', '.join(map(repr, unknown))} that have no weights. "
                                 f"Layers with weights (numbered as `dlcli summary` shows): {choices_text(layers)}.")
