"""Losses by recipe name. Each builds ``fn(logits, targets) -> (B,)`` per-example losses.

Cross-entropies work on logits (numerically stable); the regression-style
losses (mse, mae, huber) compare the task's *predictions* — for the
lecture's sigmoid-output network trained with MSE, the sigmoid of the logit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlcli.errors import DlcliError
from dlcli.lazy import lazy
from dlcli.registry import Registry
from dlcli.tasks import Task

jax = lazy("jax")  # the builders need jax when they run, not when a recipe is checked
jnp = lazy("jax.numpy")
optax = lazy("optax")

LOSSES = Registry("loss")
LossFn = Callable[..., Any]  # (outputs (B, ...), targets (B, ...)) -> per-example losses (B,)


def _per_example(values: jax.Array) -> jax.Array:
    return values.reshape(values.shape[0], -1).mean(axis=1)


def _regression_style(elementwise: Callable[[jax.Array], jax.Array], task: Task) -> LossFn:
    def loss(logits, targets):
        predictions = task.link(logits)
        return _per_example(elementwise(predictions - task.targets_like(predictions, targets)))

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
    if task.targets_are_inputs:  # each input value in [0, 1] is the probability its logit predicts
        return lambda logits, x: _per_example(optax.sigmoid_binary_cross_entropy(logits, x.astype(logits.dtype)))
    if not task.binary:
        values = f"{task.num_classes} classes" if task.classifies else "continuous values"
        raise DlcliError(f"loss.kind = 'binary_crossentropy' needs two classes, but the target has {values}. "
                         "Use categorical_crossentropy for several classes, or mse for regression.")
    return lambda logits, labels: optax.sigmoid_binary_cross_entropy(logits[:, 0], labels.astype(logits.dtype))


@LOSSES.register("categorical_crossentropy")
def categorical_crossentropy(task: Task) -> LossFn:
    if not task.classifies:
        raise DlcliError(f"loss.kind = 'categorical_crossentropy' needs class labels, but this is a {task.kind} "
                         "task. Use mse, mae or huber.")
    if task.binary:
        # One logit z is the two-class softmax over (0, z).
        return lambda logits, labels: optax.sigmoid_binary_cross_entropy(logits[:, 0], labels.astype(logits.dtype))
    return optax.softmax_cross_entropy_with_integer_labels


@LOSSES.register("hinge")
def hinge(task: Task) -> LossFn:
    if not task.classifies:
        raise DlcliError(f"loss.kind = 'hinge' is a classification loss; this is a {task.kind} task. Use mse.")
    if task.binary:
        return lambda logits, labels: jnp.maximum(0.0, 1.0 - (2.0 * labels - 1.0) * logits[:, 0])
    return optax.multiclass_hinge_loss
