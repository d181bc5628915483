"""What the activation function does to a network: gradient flow and unit health.

Two measurements, both on stacked models (a leading member axis, see
:mod:`dlcli.engine.driver`) and both compiled once per architecture:

- Per-layer gradient norms of the loss on a fixed probe batch. In a deep
  sigmoid network back-propagation multiplies by sigma' <= 0.25 once per
  layer, so the first layer's gradient is orders of magnitude below the
  last layer's: the vanishing gradient, made visible.
- Unit health on the validation split, from each hidden layer's
  pre-activations z: the share of units that are *dead* (z <= 0 for every
  example, so a ReLU passes no gradient, ever), the share of (unit,
  example) pairs *active* (z > 0; about half for ReLU at initialisation)
  and, for sigmoid and tanh, the share *saturated* (in the flat tails,
  where the derivative is under 7% of its peak).

Unit health needs the hidden layers one by one, so it is measured for
:class:`dlcli.models.layers.Sequential` models (the mlp family); other
models report gradient norms only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dlcli.activations import ACTIVATIONS
from dlcli.compare.choice import ChoiceActivation
from dlcli.models.layers import Activation, Sequential

PROBE_EXAMPLES = 512  # the fixed batch the gradient norms are measured on
UNIT_EXAMPLES = 10_000  # validation examples the unit shares are measured on (bounded memory)


def make_diagnose(graphdef: nnx.GraphDef, loss_fn, with_units: bool) -> Callable[..., dict[str, jax.Array]]:
    """``diagnose(params, rest, x, y, x_units) -> {"grad_norms": (M, L), "dead", "active", "saturated": (M, H)}``.

    One compiled program for both measurements: each member's gradient norm per
    weight matrix (input side first) on the probe batch ``(x, y)``, and, with
    ``with_units``, the unit shares of its H hidden layers on ``x_units``.
    ``graphdef`` should be the evaluation graph, so that dropout does not make
    the measurement random.
    """

    def diagnose(params, rest, x, y, x_units):
        def loss(p):
            return loss_fn(nnx.merge(graphdef, p, rest)(x), y).mean()

        grads = jax.grad(loss)(params)
        # Leaves come in layer order (nnx keys layers by index); weight matrices have ndim > 1.
        out = {"grad_norms": jnp.stack([jnp.linalg.norm(g) for g in jax.tree.leaves(grads) if g.ndim > 1])}
        if with_units:
            out.update(unit_shares(nnx.merge(graphdef, params, rest), x_units))
        return out

    return jax.jit(jax.vmap(diagnose, in_axes=(0, 0, None, None, None)))


def has_hidden_layers(model: nnx.Module) -> bool:
    """Whether unit health can be measured: a Sequential model with hidden activation layers."""
    return isinstance(model, Sequential) and any(isinstance(layer, (Activation, ChoiceActivation))
                                                 for layer in model.layers)


def saturation_threshold(layer: nnx.Module) -> jax.Array:
    """|z| beyond which ``layer``'s function counts as saturated (infinite: never)."""
    if isinstance(layer, ChoiceActivation):  # the threshold of the function the index selects
        return jnp.asarray([saturates_beyond(name) for name in layer.names])[layer.index[...]]
    return jnp.asarray(saturates_beyond(layer.name))


def saturates_beyond(activation: str) -> float:
    """The |z| beyond which ``activation`` counts as saturated (the registry's trait; inf: never)."""
    return ACTIVATIONS.trait(activation, "saturates_beyond", float("inf"))


def unit_shares(model: Sequential, x: jax.Array) -> dict[str, jax.Array]:
    """Dead, active and saturated shares of each hidden layer's pre-activations on ``x`` (one model)."""
    dead, active, saturated = [], [], []
    for layer in model.layers:
        if isinstance(layer, (Activation, ChoiceActivation)):
            z = x.reshape(x.shape[0], -1)  # (N, units) pre-activations
            dead.append(jnp.mean(jnp.all(z <= 0, axis=0)))
            active.append(jnp.mean(z > 0))
            saturated.append(jnp.mean(jnp.abs(z) > saturation_threshold(layer)))
        x = layer(x)
    return {"dead": jnp.stack(dead), "active": jnp.stack(active), "saturated": jnp.stack(saturated)}


def unit_summary(shares: dict[str, np.ndarray], activation: str) -> dict[str, Any]:
    """One member's headline numbers from :func:`unit_shares` (means over hidden layers).

    Maxout units are not thresholded (each is the max of several pieces, so no
    single pre-activation decides it): their shares are None.
    """
    if activation == "maxout" or not len(shares.get("dead", [])):
        return {"dead": None, "active": None, "saturated": None, "per_layer": None}
    out = {"dead": float(np.mean(shares["dead"])), "active": float(np.mean(shares["active"])),
           "saturated": float(np.mean(shares["saturated"])) if saturates_beyond(activation) < float("inf") else None,
           "per_layer": {k: np.asarray(v).tolist() for k, v in shares.items()}}
    return out


def headline(activation: str) -> tuple[str, str] | None:
    """(share key, its name) that tells ``activation``'s failure mode, or None.

    ReLU units never above 0 are *dead* (no gradient, ever); for leaky ReLU,
    ELU and the smooth ReLUs such units still get a small gradient, so they
    are only *inactive*; sigmoid and tanh fail by *saturating*.
    """
    if saturates_beyond(activation) < float("inf"):
        return "saturated", "saturated"
    if ACTIVATIONS.trait(activation, "flat_below_zero", False):
        return "dead", "dead" if activation == "relu" else "inactive"
    return None


@dataclass
class Probe:
    """Gradient flow and unit health of every member of one stack: before, after each epoch, and at the end.

    Args:
      diagnose: from :func:`make_diagnose`, compiled once for the stack's architecture.
      batch: the probe batch ``(x, y)`` the gradient norms are measured on.
      x_units: the examples the unit shares are measured on (validation split, else training).
      kinds: each member's activation name (what its unit shares mean).
    """

    diagnose: Callable[..., dict[str, jax.Array]]
    batch: tuple[np.ndarray, np.ndarray]
    x_units: np.ndarray
    kinds: list[str]

    @classmethod
    def make(cls, setup, built, kinds: list[str]) -> "Probe":
        x_train, y_train = setup.data.splits["train"]
        x_units = setup.data.splits.get("val", setup.data.splits["train"])[0][:UNIT_EXAMPLES]
        diagnose = make_diagnose(built.eval_graph, built.loss_fn, has_hidden_layers(built.model))
        return cls(diagnose, (x_train[:PROBE_EXAMPLES], y_train[:PROBE_EXAMPLES]), x_units, kinds)

    def grad_records(self, state) -> list[dict[str, Any]]:
        """Each member's gradient norms after an epoch (the engine adds them to its epoch record)."""
        norms = jax.device_get(self.diagnose(state.params, state.rest, *self.batch, self.x_units))["grad_norms"]
        return [{"grad_norms": row.tolist()} for row in norms]

    def measure(self, params, rest) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(gradient norms (M, weight matrices), each member's :func:`unit_summary`) of stacked models."""
        shares = jax.device_get(self.diagnose(params, rest, *self.batch, self.x_units))
        norms = shares.pop("grad_norms")
        units = [unit_summary({k: v[m] for k, v in shares.items()}, kind) for m, kind in enumerate(self.kinds)]
        return norms, units
