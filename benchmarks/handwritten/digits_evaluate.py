"""Evaluate saved digits-mlp weights by hand: load, standardise, one forward pass, accuracy.

The yardstick for `dlcli evaluate RUN_DIR` (one forward pass over the test split).
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

weights = np.load(Path(sys.argv[1] if len(sys.argv) > 1 else "digits-out") / "weights.npz")
x, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(x))
x, y = x[order].astype(np.float32), y[order]
n_test, n_val = int(0.2 * len(x)), int(0.1 * len(x))
x_train = x[n_test + n_val:]
x_test = (x[:n_test] - x_train.mean(0)) / (x_train.std(0) + 1e-7)
forward = jax.jit(lambda p, x: jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"])
logits = forward({k: jnp.asarray(v) for k, v in weights.items()}, x_test)
print(f"test accuracy {float((np.argmax(logits, axis=1) == y[:n_test]).mean()):.4f}")
