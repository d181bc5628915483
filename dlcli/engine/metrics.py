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

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from dlcli.tasks import Task


CHUNK = 1 << 16  # rows an epoch-end metric works on at once (see chunked_sum)


def chunked_sum(n: int, chunk_value: Callable[[jax.Array, int, jax.Array], jax.Array]) -> jax.Array:
    """The sum over rows ``[0, n)``, :data:`CHUNK` at a time, of ``chunk_value(start, size, fresh)``: the value
    of rows ``[start, start + size)``, counting only the ``fresh`` (size,) ones (the last chunk ends at ``n``,
    overlapping the one before).

    A metric over millions of held-out rows otherwise holds (N,) intermediates
    that XLA:CPU does not fuse away: at 2M validation rows the epoch end's
    temporary buffers went from 58 to 26 MB this way (BENCHMARKS.md).
    """
    size = min(CHUNK, n)

    def one(i):
        start = jnp.minimum(i * size, n - size)
        return chunk_value(start, size, start + jnp.arange(size) >= i * size)

    return jax.lax.map(one, jnp.arange(-(-n // size))).sum()


def rows_of(array: jax.Array, start: jax.Array, size: int) -> jax.Array:
    return jax.lax.dynamic_slice_in_dim(array, start, size)


def binary_auc(positive: jax.Array, scores: jax.Array) -> jax.Array:
    """Area under the ROC curve of ``scores`` (N,) for 0/1 ``positive`` (N,), ties one half.

    Each positive's share of the negatives below it is found in the sorted
    negatives, a chunk of scores at a time (:func:`chunked_sum`).
    """
    positive = positive.astype(bool)
    negatives = jnp.sort(jnp.where(positive, jnp.inf, scores))  # real negatives first, +inf placeholders after
    n = len(scores)
    n_pos = chunked_sum(n, lambda start, size, fresh: (rows_of(positive, start, size) & fresh).sum())
    n_neg = n - n_pos

    def shares(start, size, fresh):  # the summed shares of a chunk's positives
        s = rows_of(scores, start, size)
        below = jnp.searchsorted(negatives, s, side="left")
        at_or_below = jnp.searchsorted(negatives, s, side="right")
        share = (below + 0.5 * (at_or_below - below)) / jnp.maximum(n_neg, 1)  # (C,) in [0, 1]: no overflow
        return jnp.where(rows_of(positive, start, size) & fresh, share, 0.0).sum()

    auc = chunked_sum(n, shares) / jnp.maximum(n_pos, 1)
    return jnp.where((n_pos > 0) & (n_neg > 0), auc, jnp.nan)


def auc(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    probabilities = task.link(outputs)
    if task.binary:
        return binary_auc(y == 1, probabilities)
    classes = jnp.arange(task.num_classes)
    per_class = jax.vmap(lambda k: binary_auc(y == k, probabilities[:, k]))(classes)
    return per_class.mean()  # NaN when a class is missing from the split, as the host report omits it


def row_mean(per_row: Callable[[jax.Array, jax.Array], jax.Array], outputs: jax.Array, y: jax.Array) -> jax.Array:
    """The mean of ``per_row(outputs, y)`` (N, ...), a chunk of rows at a time (:func:`chunked_sum`)."""
    n = len(y)
    values_per_row = math.prod(jax.eval_shape(per_row, outputs[:1], y[:1]).shape[1:])

    def chunk_sum(start, size, fresh):
        values = per_row(rows_of(outputs, start, size), rows_of(y, start, size)).astype(jnp.float32)  # (C, ...)
        return jnp.where(fresh.reshape(size, *[1] * (values.ndim - 1)), values, 0.0).sum()

    return chunked_sum(n, chunk_sum) / (n * values_per_row)


def accuracy(task: Task, outputs: jax.Array, y: jax.Array) -> jax.Array:
    return row_mean(task.correct, outputs, y)


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
    out = {"loss": row_mean(loss_fn, outputs, y)}
    out.update({name: EPOCH_METRICS[name](task, outputs, y) for name in wanted})
    return out
