"""Losses by recipe name. Each builds ``fn(logits, targets) -> (B,)`` per-example losses.

Cross-entropies work on logits (numerically stable); the regression-style
losses (mse, mae, huber) compare the task's *predictions* — for the
lecture's sigmoid-output network trained with MSE, the sigmoid of the logit.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from dlcli.errors import DlcliError
from dlcli.registry import Registry
from dlcli.tasks import Task

LOSSES = Registry("loss")
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def _targets_like(task: Task, predictions: jax.Array, targets: jax.Array) -> jax.Array:
    if task.kind == "classification" and not task.binary:
        return jax.nn.one_hot(targets, task.num_classes)  # (B, K)
    return targets.astype(predictions.dtype).reshape(predictions.shape)


def _per_example(values: jax.Array) -> jax.Array:
    return values.reshape(values.shape[0], -1).mean(axis=1)


def _regression_style(elementwise: Callable[[jax.Array], jax.Array], task: Task) -> LossFn:
    def loss(logits, targets):
        predictions = task.link(logits)
        return _per_example(elementwise(predictions - _targets_like(task, predictions, targets)))

    return loss


@LOSSES.register("mse")
def mse(task: Task) -> LossFn:
    return _regression_style(jnp.square, task)


@LOSSES.register("mae")
def mae(task: Task) -> LossFn:
    return _regression_style(jnp.abs, task)


@LOSSES.register("huber")
def huber(task: Task, *, delta: float = 1.0) -> LossFn:
    return _regression_style(lambda error: optax.huber_loss(error, delta=delta), task)


@LOSSES.register("binary_crossentropy")
def binary_crossentropy(task: Task) -> LossFn:
    if task.kind == "reconstruction":  # each input value in [0, 1] is the probability its logit predicts
        return lambda logits, x: _per_example(optax.sigmoid_binary_cross_entropy(logits, x.astype(logits.dtype)))
    if not task.binary and task.kind != "adversarial":
        raise DlcliError(f"loss.kind = 'binary_crossentropy' needs two classes, but the target has "
                         f"{task.num_classes or 'continuous'} values. Use categorical_crossentropy for several "
                         "classes, or mse for regression.")
    return lambda logits, labels: optax.sigmoid_binary_cross_entropy(logits[:, 0], labels.astype(logits.dtype))


@LOSSES.register("categorical_crossentropy")
def categorical_crossentropy(task: Task) -> LossFn:
    if task.kind != "classification":
        raise DlcliError("loss.kind = 'categorical_crossentropy' needs class labels, but this is a regression "
                         "task. Use mse, mae or huber.")
    if task.binary:
        # One logit z is the two-class softmax over (0, z).
        return lambda logits, labels: optax.sigmoid_binary_cross_entropy(logits[:, 0], labels.astype(logits.dtype))
    return optax.softmax_cross_entropy_with_integer_labels


@LOSSES.register("hinge")
def hinge(task: Task) -> LossFn:
    if task.kind != "classification":
        raise DlcliError("loss.kind = 'hinge' is a classification loss; this is a regression task. Use mse.")
    if task.binary:
        return lambda logits, labels: jnp.maximum(0.0, 1.0 - (2.0 * labels - 1.0) * logits[:, 0])
    return optax.multiclass_hinge_loss
