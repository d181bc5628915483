"""Model families, each registered under the name a recipe's ``model.kind`` uses.

A builder takes ``(in_shape, out_dim, rngs)`` from the data and the task, and
its own settings as keyword-only arguments from ``[model]``. The entries are
imported on first use, so that a recipe's model kind is checked without
importing jax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlcli.registry import Registry

if TYPE_CHECKING:
    from flax import nnx

MODELS = Registry("model", {
    "perceptron": "dlcli.models.mlp:perceptron",
    "mlp": "dlcli.models.mlp:mlp",
    "cnn": "dlcli.models.cnn:cnn",
    "lenet": "dlcli.models.cnn:lenet",
    "rnn": "dlcli.models.recurrent:rnn",
    "lstm": "dlcli.models.recurrent:lstm",
    "gru": "dlcli.models.recurrent:gru",
    "autoencoder": "dlcli.models.autoencoder:autoencoder",
    "vae": "dlcli.models.autoencoder:vae",
    "gan": "dlcli.models.gan:gan",
})


def build_model(kind: str, settings: dict[str, Any], in_shape: tuple[int, ...], out_dim: int, seed: Any) -> nnx.Module:
    """``seed``: an int, or a traced integer when the weights of several seeds are drawn by one vmapped program."""
    import jax
    from flax import nnx

    params, dropout = (seed, seed + 1) if isinstance(seed, int) else (jax.random.key(seed), jax.random.key(seed + 1))
    return MODELS.build(kind, settings, tuple(in_shape), out_dim, nnx.Rngs(params=params, dropout=dropout),
                        where="[model]")
