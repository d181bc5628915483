"""Which step trains which task: a registry of step factories keyed by task kind.

Every factory has the signature of :func:`dlcli.train.step.make_train_step`
and returns ``step(state, x, y, w) -> (state, sums)`` with at least
``loss`` and ``count`` sums, so the epoch driver and the scanned chunk
function never need to know which task they run. Adding a task is one entry.
"""

from __future__ import annotations

from collections.abc import Callable

import optax
from flax import nnx

from dlcli.tasks import Task
from dlcli.train.adversarial import make_adversarial_step
from dlcli.train.reconstruction import make_reconstruction_step
from dlcli.train.step import LossFn, make_train_step

STEP_FACTORIES: dict[str, Callable[..., Callable]] = {
    "classification": make_train_step,
    "regression": make_train_step,
    "reconstruction": make_reconstruction_step,
    "adversarial": make_adversarial_step,
}


def make_task_step(graphdef: nnx.GraphDef, loss_fn: LossFn, optimizer: optax.GradientTransformation, task: Task,
                   l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
    """The train step of ``task.kind`` (see :data:`STEP_FACTORIES`)."""
    return STEP_FACTORIES[task.kind](graphdef, loss_fn, optimizer, task, l1, l2, augment)
