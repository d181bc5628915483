"""The train step of a run's task.

Every step has the signature of :func:`dlcli.train.step.make_train_step`
and returns ``step(state, x, y, w) -> (state, sums)`` with at least
``loss`` and ``count`` sums, so the epoch driver and the scanned chunk
function never need to know which task they run. Each task chooses its
step (:meth:`dlcli.tasks.Task.make_step`).
"""

from __future__ import annotations

from collections.abc import Callable

import optax
from flax import nnx

from dlcli.tasks import Task
from dlcli.train.step import LossFn


def make_task_step(graphdef: nnx.GraphDef, loss_fn: LossFn, optimizer: optax.GradientTransformation, task: Task,
                   l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
    """The train step of ``task``: plain supervised, reconstruction or adversarial."""
    return task.make_step(graphdef, loss_fn, optimizer, l1, l2, augment)
