"""Epoch metrics on the device, so that an epoch ends without a trip to the host.

Each function takes the task, the model's outputs ``(N, O)`` (or
reconstructions) and the targets, and returns a scalar. They follow the
definitions of :mod:`dlcli.metrics` (the host-side report of `evaluate`):
AUC counts ties one half, as scikit-learn does, and is macro one-vs-rest
for several classes; R² treats a constant target as scikit-learn does. A
metric that is undefined on the split (AUC with a class missing) is NaN,
and the epoch record leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from dlcli.tasks import Task


AUC_CHUNK = 1 << 16  # scores ranked at once: the ranks of millions at a time cost tens of MB every epoch end


def binary_auc(positive: jax.Array, scores: jax.Array) -> jax.Array:
    """Area under the ROC curve of ``scores`` (N,) for 0/1 ``positive`` (N,), ties one half.

    Each positive's share of negatives below it is found in the sorted
    negatives, :data:`AUC_CHUNK` scores at a time, so that beside the sort the
    epoch end holds a chunk's ranks, not N of them (measured on 2M validation
    rows: 42 MB of XLA's temporary buffers for the metric, BENCHMARKS.md).
    """
    positive = positive.astype(bool)
    negatives = jnp.sort(jnp.where(positive, jnp.inf, scores))  # real negatives first, +inf placeholders after
    n_pos, n_neg = positive.sum(), (~positive).sum()
    n, size = len(scores), min(AUC_CHUNK, len(scores))

    def chunk_share(i):  # the summed shares of chunk i's positives
        start = jnp.minimum(i * size, n - size)  # the last chunk ends at N, overlapping the one before
        s, p = jax.lax.dynamic_slice(scores, (start,), (size,)), jax.lax.dynamic_slice(positive, (start,), (size,))
        fresh = start + jnp.arange(size) >= i * size  # rows an earlier chunk already counted weigh nothing
        below = jnp.searchsorted(negatives, s, side="left")
        at_or_below = jnp.searchsorted(negatives, s, side="right")
        share = (below + 0.5 * (at_or_below - below)) / jnp.maximum(n_neg, 1)  # (C,) in [0, 1]: no overflow
        return jnp.where(p & fresh, share, 0.0).sum()

    auc = jax.lax.map(chunk_share, jnp.arange(-(-n // size))).sum() / jnp.maximum(n_pos, 1)
    return jnp.where((n_pos > 0) & (n_neg > 0), auc, jnp.nan)


def auc(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    probabilities = task.link(outputs)
    if task.binary:
        return binary_auc(y == 1, probabilities)
    classes = jnp.arange(task.num_classes)
    per_class = jax.vmap(lambda k: binary_auc(y == k, probabilities[:, k]))(classes)
    return per_class.mean()  # NaN when a class is missing from the split, as the host report omits it


def accuracy(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    return task.correct(outputs, y).mean()


def _errors(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    predictions = task.link(outputs)
    return predictions.reshape(len(y), -1) - y.reshape(len(y), -1)  # (N, D)


def mse(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(_errors(task, outputs, y) ** 2)


def mae(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(_errors(task, outputs, y)))


def r2(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    targets = y.reshape(len(y), -1)  # (N, D)
    residual = jnp.sum(_errors(task, outputs, y) ** 2, axis=0)
    total = jnp.sum((targets - targets.mean(axis=0)) ** 2, axis=0)
    per_output = jnp.where(total != 0, 1.0 - residual / jnp.where(total != 0, total, 1.0),
                           jnp.where(residual == 0, 1.0, 0.0))
    return per_output.mean()


def real_score(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    return task.link(outputs).mean()  # D(x) on real data: 0.5 = cannot tell real from fake


EPOCH_METRICS: dict[str, Callable[[Task, jax.Array, jax.Array], jax.Array]] = {
    "accuracy": accuracy, "auc": auc, "mse": mse, "mae": mae, "r2": r2, "real_score": real_score,
}


def split_metrics(task: Task, loss_fn, wanted: list[str], outputs: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """``{"loss": ..., name: ...}`` for the wanted metrics of outputs on one split."""
    out = {"loss": loss_fn(outputs, y).mean()}
    out.update({name: EPOCH_METRICS[name](task, outputs, y) for name in wanted})
    return out
