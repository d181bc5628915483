"""Model families, each registered under the name a recipe's ``model.kind`` uses.

A builder takes ``(in_shape, out_dim, rngs)`` from the data and the task, and
its own settings as keyword-only arguments from ``[model]``.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from dlcli.registry import Registry

MODELS = Registry("model")


def build_model(kind: str, settings: dict[str, Any], in_shape: tuple[int, ...], out_dim: int, seed: int) -> nnx.Module:
    return MODELS.build(kind, settings, tuple(in_shape), out_dim, nnx.Rngs(params=seed, dropout=seed + 1),
                        where="[model]")


# Registration happens on import.
from dlcli.models import mlp  # noqa: E402,F401
from dlcli.models import autoencoder, cnn, gan, recurrent  # noqa: E402,F401
