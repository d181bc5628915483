"""mlp-xor by hand: 2 -> 4 tanh -> 1, Adam 0.05, 300 full-batch epochs, one jitted scan.

The yardstick `benchmarks/time_to_result.py` times this whole process against
`dlcli train mlp-xor`: what a careful JAX user would write for the same work
(train, judge accuracy, save the weights and the per-epoch losses).
"""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

out = Path(sys.argv[1] if len(sys.argv) > 1 else "xor-out")
x = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], jnp.float32)
y = jnp.array([0, 1, 1, 0], jnp.float32)


def init(key):
    k1, k2 = jax.random.split(key)
    glorot = jax.nn.initializers.glorot_uniform()
    return {"w1": glorot(k1, (2, 4)), "b1": jnp.zeros(4), "w2": glorot(k2, (4, 1)), "b2": jnp.zeros(1)}


def forward(params, x):
    return (jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"])[:, 0]


def loss_fn(params):
    return optax.sigmoid_binary_cross_entropy(forward(params, x), y).mean()


optimizer = optax.adam(0.05)


@jax.jit
def train(params):
    def epoch(carry, _):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(epoch, (params, optimizer.init(params)), None, length=300)
    accuracy = ((forward(params, x) > 0) == (y > 0.5)).mean()
    return params, losses, accuracy


params, losses, accuracy = train(init(jax.random.key(0)))
out.mkdir(parents=True, exist_ok=True)
np.savez(out / "weights.npz", **jax.device_get(params))
(out / "metrics.json").write_text(json.dumps({"loss": np.asarray(losses).tolist(), "accuracy": float(accuracy)}))
print(f"accuracy {float(accuracy):.4f}  final loss {float(losses[-1]):.4f}")
