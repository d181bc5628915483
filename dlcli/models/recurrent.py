"""Recurrent networks over ``(B, T, F)`` sequences: plain RNN, LSTM and GRU.

One cell is applied at every time step with the same weights, its hidden
state carrying context forward. The loop over time is ``jax.lax.scan``, so
it compiles to one XLA loop whatever ``T`` is. A plain RNN's gradient to an
early step is a product of ``T`` Jacobians and vanishes; the LSTM's gated
cell (forget, input, output gates) and the GRU's update gate let it through.
The last hidden state (both directions' when bidirectional) feeds a linear
head.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.errors import DlcliError
from dlcli.models import MODELS

CELLS = {"rnn": nnx.SimpleCell, "lstm": nnx.LSTMCell, "gru": nnx.GRUCell}


def scan_cell(cell: nnx.Module, x: jax.Array, reverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """Run ``cell`` over time: x (B, T, F) -> outputs (B, T, H) and the final output (B, H)."""
    zeros = jnp.zeros((x.shape[0], cell.hidden_features), x.dtype)  # (B, H): every sequence starts blank
    carry = (zeros, zeros) if isinstance(cell, nnx.LSTMCell) else zeros  # the LSTM carries (cell, hidden)

    def step(carry, x_t):  # x_t: (B, F)
        return cell(carry, x_t)

    carry, outputs = jax.lax.scan(step, carry, jnp.swapaxes(x, 0, 1), reverse=reverse)  # outputs: (T, B, H)
    final = outputs[0] if reverse else outputs[-1]
    return jnp.swapaxes(outputs, 0, 1), final


def forget_bias(cell: nnx.Module) -> nnx.Module:
    """Start an LSTM's forget gate open (bias 1, as Keras does): at bias 0 the gate
    halves the cell state every step, so memory (and gradient) fade before training
    has learned to keep them (Jozefowicz et al., 2015)."""
    if isinstance(cell, nnx.LSTMCell):
        cell.hf.bias[...] = jnp.ones_like(cell.hf.bias[...])
    return cell


class Recurrent(nnx.Module):
    """Stacked recurrent layers (optionally bidirectional) and a linear head on the last state."""

    def __init__(self, cell: str, in_features: int, hidden: int, layers: int, bidirectional: bool, out_dim: int,
                 dropout: float, rngs: nnx.Rngs):
        self.name = f"{cell}{'-bidirectional' if bidirectional else ''}"
        make = CELLS[cell]
        width = in_features
        self.forward = nnx.List([])
        self.backward = nnx.List([])
        for _ in range(layers):
            self.forward.append(forget_bias(make(width, hidden, rngs=rngs)))
            if bidirectional:
                self.backward.append(forget_bias(make(width, hidden, rngs=rngs)))
            width = hidden * (2 if bidirectional else 1)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else None
        self.head = nnx.Linear(width, out_dim, rngs=rngs)

    def encode(self, x: jax.Array) -> jax.Array:
        """x (B, T, F) -> the summary (B, H) or (B, 2H) the head reads."""
        for i, cell in enumerate(self.forward):
            outputs, final = scan_cell(cell, x)
            if len(self.backward):
                back_outputs, back_final = scan_cell(self.backward[i], x, reverse=True)
                outputs = jnp.concatenate([outputs, back_outputs], axis=-1)  # (B, T, 2H)
                final = jnp.concatenate([final, back_final], axis=-1)
            x = outputs
        return final

    def __call__(self, x: jax.Array) -> jax.Array:
        summary = self.encode(x)
        if self.dropout is not None:
            summary = self.dropout(summary)
        return self.head(summary)  # (B, O)


def sequence_shape(kind: str, in_shape: tuple[int, ...]) -> int:
    """Features per step from (T, F), or 1 for (T,) series."""
    if len(in_shape) == 1:
        return 1
    if len(in_shape) != 2:
        raise DlcliError(f"[model] kind = '{kind}' needs sequences shaped (T, F) per example; the data has shape "
                         f"{list(in_shape)}. Save x as (N, T, F) in the NPZ file.")
    return in_shape[1]


class AddFeature(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x[..., None]  # (B, T) -> (B, T, 1)


def _recurrent(kind: str):
    def build(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, hidden: int = 32, layers: int = 1,
              bidirectional: bool = False, dropout: float = 0.0) -> nnx.Module:
        if hidden < 1 or layers < 1:
            raise DlcliError("[model]: hidden and layers must be >= 1.")
        model = Recurrent(kind, sequence_shape(kind, in_shape), hidden, layers, bidirectional, out_dim, dropout, rngs)
        if len(in_shape) == 1:
            from dlcli.models.layers import Sequential

            return Sequential(AddFeature(), model)
        return model

    build.__doc__ = f"""A {kind.upper()} over (T, F) sequences; a linear head reads the last hidden state.

    Args:
      hidden: units of the hidden state.
      layers: stacked recurrent layers (each reads the full output sequence of the one below).
      bidirectional: also run each layer backwards in time and concatenate both.
      dropout: drop probability on the final state before the head (training only).
    """
    return build


for _kind in CELLS:
    MODELS.register(_kind)(_recurrent(_kind))
