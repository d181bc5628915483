"""Where should an LSTM project its inputs: before the time loop, or in each step?

A hand-written LSTM (fused gates, Adam, MSE) trained for one scanned epoch of
44 batches of 32 sequences of 40 steps, both ways, on the default JAX device.
dlcli's cells choose by this measurement (``FusedCell.hoist_projection``)::

    python benchmarks/lstm_projection.py            # F=1, H=32 (sine-lstm)
    python benchmarks/lstm_projection.py 64 128     # F=64, H=128
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

BATCH, STEPS, BATCHES = 32, 40, 44


def lstm(params, x, hoist: bool):
    """x (B, T, F) -> one prediction per sequence (B,)."""
    hidden = params["U"].shape[0]

    def step(carry, inputs):
        c, h = carry
        z = (inputs if hoist else inputs @ params["W"] + params["b"]) + h @ params["U"]  # (B, 4H)
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    xs = x @ params["W"] + params["b"] if hoist else x  # (B, T, 4H) or (B, T, F)
    zeros = jnp.zeros((x.shape[0], hidden))
    (_, h), _ = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(xs, 0, 1))
    return (h @ params["V"])[:, 0]


def make_epoch(hoist: bool, optimizer):
    def train_step(carry, batch):
        params, opt_state = carry
        x, y = batch
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((lstm(p, x, hoist) - y) ** 2))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def epoch(params, opt_state, xs, ys):
        (params, opt_state), losses = jax.lax.scan(train_step, (params, opt_state), (xs, ys))
        return params, opt_state, losses.sum()

    return epoch


def main() -> None:
    features, hidden = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (1, 32)
    keys = jax.random.split(jax.random.key(0), 3)
    params = {"W": 0.3 * jax.random.normal(keys[0], (features, 4 * hidden)),
              "U": 0.1 * jax.random.normal(keys[1], (hidden, 4 * hidden)),
              "b": jnp.zeros(4 * hidden), "V": 0.1 * jax.random.normal(keys[2], (hidden, 1))}
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((BATCHES, BATCH, STEPS, features), np.float32))
    ys = jnp.asarray(rng.standard_normal((BATCHES, BATCH), np.float32))
    optimizer = optax.adam(1e-3)
    print(f"device {jax.devices()[0].platform}, F={features}, H={hidden}")
    for name, hoist in (("hoisted", True), ("per step", False)):
        epoch, p, s = make_epoch(hoist, optimizer), params, optimizer.init(params)
        p, s, loss = epoch(p, s, xs, ys)
        loss.block_until_ready()  # compiled
        start = time.perf_counter()
        for _ in range(20):
            p, s, loss = epoch(p, s, xs, ys)
        loss.block_until_ready()
        seconds = (time.perf_counter() - start) / 20
        print(f"{name:9s} {seconds * 1e3:7.1f} ms/epoch  {BATCHES * BATCH / seconds:10,.0f} samples/s")


if __name__ == "__main__":
    main()
