"""Recurrent networks over ``(B, T, F)`` sequences: plain RNN, LSTM and GRU.

One cell is applied at every time step with the same weights, its hidden
state carrying context forward. The loop over time is ``jax.lax.scan``, so
it compiles to one XLA loop whatever ``T`` is. A plain RNN's gradient to an
early step is a product of ``T`` Jacobians and vanishes; the LSTM's gated
cell (forget, input, output gates) and the GRU's update gate let it through.
The last hidden state (both directions' when bidirectional) feeds a linear
head. The cells are in :mod:`dlcli.models.cells`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.errors import DlcliError
from dlcli.models.cells import FusedCell, GRUCell, LSTMCell, SimpleCell
from dlcli.models.layers import Dropout, Sequential

CELLS = {"rnn": SimpleCell, "lstm": LSTMCell, "gru": GRUCell}


def scan_cell(cell: FusedCell, x: jax.Array, reverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """Run ``cell`` over time: x (B, T, F) -> outputs (B, T, H) and the final output (B, H)."""
    return cell.scan(x, reverse)


class Recurrent(nnx.Module):
    """Stacked recurrent layers (optionally bidirectional) and a linear head on the last state."""

    def __init__(self, cell: str, in_features: int, hidden: int, layers: int, bidirectional: bool, out_dim: int,
                 dropout: float, rngs: nnx.Rngs, **cell_options: float):
        self.name = f"{cell}{'-bidirectional' if bidirectional else ''}"
        make = CELLS[cell]
        width = in_features
        self.forward = nnx.List([])
        self.backward = nnx.List([])
        for _ in range(layers):
            self.forward.append(make(width, hidden, rngs, **cell_options))
            if bidirectional:
                self.backward.append(make(width, hidden, rngs, **cell_options))
            width = hidden * (2 if bidirectional else 1)
        self.dropout = Dropout(dropout, rngs=rngs) if dropout else None
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


def recurrent(kind: str, in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, hidden: int, layers: int,
              bidirectional: bool, dropout: float, **cell_options: float) -> nnx.Module:
    if hidden < 1 or layers < 1:
        raise DlcliError("[model]: hidden and layers must be >= 1.")
    model = Recurrent(kind, sequence_shape(kind, in_shape), hidden, layers, bidirectional, out_dim, dropout, rngs,
                      **cell_options)
    return Sequential(AddFeature(), model) if len(in_shape) == 1 else model


def rnn(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, hidden: int = 32, layers: int = 1,
        bidirectional: bool = False, dropout: float = 0.0) -> nnx.Module:
    """A plain (Elman) RNN over (T, F) sequences; a linear head reads the last hidden state.

    Args:
      hidden: units of the hidden state.
      layers: stacked recurrent layers (each reads the full output sequence of the one below).
      bidirectional: also run each layer backwards in time and concatenate both.
      dropout: drop probability on the final state before the head (training only).
    """
    return recurrent("rnn", in_shape, out_dim, rngs, hidden, layers, bidirectional, dropout)


def lstm(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, hidden: int = 32, layers: int = 1,
         bidirectional: bool = False, dropout: float = 0.0, forget_bias: float = 2.0) -> nnx.Module:
    """An LSTM over (T, F) sequences; settings as for ``rnn``, plus:

    Args:
      forget_bias: the forget gate's initial bias. At 1 (Keras) the untrained
        cell keeps sigmoid(1) = 73% of its memory a step, 0.2% after 20 steps;
        at 2 it keeps 88%, 8% after 20 steps, enough for the gradient to find
        dependencies that far back (long-memory-lstm learns reliably at 2).
    """
    return recurrent("lstm", in_shape, out_dim, rngs, hidden, layers, bidirectional, dropout, forget_bias=forget_bias)


def gru(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, hidden: int = 32, layers: int = 1,
        bidirectional: bool = False, dropout: float = 0.0) -> nnx.Module:
    """A GRU over (T, F) sequences (settings as for ``rnn``): gated like the LSTM, without a cell state."""
    return recurrent("gru", in_shape, out_dim, rngs, hidden, layers, bidirectional, dropout)
