"""digits-mlp by hand: 64 -> 256 ReLU -> 10, Adam 2e-3, L2 1e-4, batch 32, 30 epochs.

The same work as `dlcli train digits-mlp`: scikit-learn's digits split
70/10/20, standardised on the training split, an epoch scanned over
shuffled mini-batches in one jitted call, validation loss after each epoch
with the best epoch's weights kept, then test accuracy, and the weights and
per-epoch losses saved. `benchmarks/time_to_result.py` times the whole
process against dlcli's.
"""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

out = Path(sys.argv[1] if len(sys.argv) > 1 else "digits-out")
x, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(x))
x, y = x[order].astype(np.float32), y[order].astype(np.int32)
n_test, n_val = int(0.2 * len(x)), int(0.1 * len(x))
x_test, y_test, x_val, y_val = x[:n_test], y[:n_test], x[n_test:n_test + n_val], y[n_test:n_test + n_val]
x_train, y_train = x[n_test + n_val:], y[n_test + n_val:]
mean, std = x_train.mean(0), x_train.std(0) + 1e-7
x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
BATCH, EPOCHS = 32, 30
steps = -(-len(x_train) // BATCH)


def init(key):
    k1, k2 = jax.random.split(key)
    glorot = jax.nn.initializers.glorot_uniform()
    return {"w1": glorot(k1, (64, 256)), "b1": jnp.zeros(256), "w2": glorot(k2, (256, 10)), "b2": jnp.zeros(10)}


def forward(params, x):
    return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def loss_fn(params, x, y, w):
    losses = optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y)
    return (losses * w).sum() / w.sum() + 1e-4 * ((params["w1"] ** 2).sum() + (params["w2"] ** 2).sum())


optimizer = optax.adam(2e-3)
x_dev, y_dev = jnp.asarray(x_train), jnp.asarray(y_train)


@jax.jit
def epoch(params, opt_state, idx, w):
    def step(carry, batch):
        params, opt_state = carry
        i, wi = batch
        loss, grads = jax.value_and_grad(loss_fn)(params, x_dev[i], y_dev[i], wi)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (idx, w))
    val_loss = optax.softmax_cross_entropy_with_integer_labels(forward(params, x_val), y_val).mean()
    return params, opt_state, losses.mean(), val_loss


params = init(jax.random.key(0))
opt_state = optimizer.init(params)
history, best, best_loss = [], params, np.inf
rng = np.random.default_rng(0)
for e in range(EPOCHS):
    idx = np.zeros(steps * BATCH, np.int32)
    w = np.zeros(steps * BATCH, np.float32)
    idx[:len(x_train)], w[:len(x_train)] = rng.permutation(len(x_train)), 1.0
    params, opt_state, loss, val_loss = epoch(params, opt_state, idx.reshape(steps, BATCH), w.reshape(steps, BATCH))
    history.append({"epoch": e + 1, "loss": float(loss), "val_loss": float(val_loss)})
    if float(val_loss) < best_loss:
        best, best_loss = params, float(val_loss)
accuracy = float((np.argmax(forward(best, x_test), axis=1) == y_test).mean())
out.mkdir(parents=True, exist_ok=True)
np.savez(out / "weights.npz", **jax.device_get(best))
(out / "metrics.json").write_text(json.dumps({"history": history, "test_accuracy": accuracy}))
print(f"test accuracy {accuracy:.4f}")
