"""Early stopping as a pure function of arrays, so it runs inside the compiled epoch.

The rule is :class:`dlcli.train.early_stopping.EarlyStopping`'s: ``patience``
counts consecutive epochs whose monitored value did not improve on the best
by more than ``min_delta``; the first finite value always improves.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dlcli.train.early_stopping import EarlyStopping


class StopState(NamedTuple):
    best: jax.Array  # f32, +inf (min) or -inf (max) until the first finite value
    best_epoch: jax.Array  # i32, 0 until then
    wait: jax.Array  # i32, epochs without improvement
    stopped: jax.Array  # bool


def initial_stop_state(rule: EarlyStopping) -> StopState:
    # An infinite start, not NaN: every process of a multi-process run must hold equal values.
    best = (np.inf if rule.mode == "min" else -np.inf) if rule.best is None else rule.best
    return StopState(np.float32(best), np.int32(rule.best_epoch), np.int32(rule.wait), np.bool_(False))  # host values


def update_stop_state(rule: EarlyStopping, stop: StopState, epoch: jax.Array, value: jax.Array
                      ) -> tuple[StopState, jax.Array]:
    """The state after one epoch's monitored ``value``, and whether that epoch is the best so far."""
    gain = stop.best - value if rule.mode == "min" else value - stop.best
    improved = jnp.isfinite(value) & (gain > rule.min_delta)  # the first finite value gains +inf
    wait = jnp.where(improved, 0, stop.wait + 1)
    stopped = stop.stopped | (~improved & (wait >= rule.patience) if rule.patience is not None else False)
    return StopState(jnp.where(improved, value, stop.best), jnp.where(improved, epoch, stop.best_epoch),
                     wait, stopped), improved
