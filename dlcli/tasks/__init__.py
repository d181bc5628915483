"""Tasks: what a model's outputs mean, and everything that differs between kinds of training.

One class per task kind, registered by the name a recipe's ``task`` uses:
classification and regression learn y from x; reconstruction learns x from
x (autoencoders); adversarial trains a generator against a discriminator
(GANs). A task owns its output link and default loss, its train step, its
metrics and report, and its figures; nothing outside this package branches
on a task's name.

This module imports neither jax nor the task classes, so that a recipe can
be checked (:func:`implied_task`) in the time it takes to read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlcli.errors import DlcliError
from dlcli.registry import Registry
from dlcli.tasks.base import Task

if TYPE_CHECKING:
    import numpy as np

    from dlcli.data.preprocess import Preprocessing

TASKS = Registry("task", {
    "classification": "dlcli.tasks.classification:Classification",
    "regression": "dlcli.tasks.regression:Regression",
    "reconstruction": "dlcli.tasks.reconstruction:Reconstruction",
    "adversarial": "dlcli.tasks.adversarial:Adversarial",
})

# The model kinds built for one task, which they train whatever labels the data has
# (an autoencoder reconstructs). Only these models train these tasks.
MODELS_OF_TASK: dict[str, tuple[str, ...]] = {
    "reconstruction": ("autoencoder", "vae"),
    "adversarial": ("gan",),
}

MAX_CLASSES = 50  # more distinct integral targets than this are read as a regression target

__all__ = ["MODELS_OF_TASK", "TASKS", "Task", "implied_task", "infer_task", "task_from", "task_named"]


# What a finished run is judged by, per task (`dlcli runs`): the first of these its final report has leads;
# a task not listed leads with its loss.
HEADLINE_METRICS = {"classification": ("accuracy", "auc"), "regression": ("r2", "mse")}


def task_named(kind: str) -> type[Task]:
    """The task class a recipe (or a run's preprocessing) names."""
    return TASKS.get(kind, where="task")


def implied_task(model_kind: str, declared: str | None, where: str = "task") -> str | None:
    """The task a recipe trains: the one its model fixes, else the declared one (None: infer from the data)."""
    fixed = next((task for task, models in MODELS_OF_TASK.items() if model_kind in models), None)
    if fixed and declared and declared != fixed:
        raise DlcliError(f"{where} = '{declared}' but model.kind = '{model_kind}' trains a {fixed} task. Remove "
                         f"{where} or set it to '{fixed}'.")
    if declared in MODELS_OF_TASK and not fixed:
        raise DlcliError(f"{where} = '{declared}' needs a model built for it (model.kind = "
                         f"{' or '.join(repr(m) for m in MODELS_OF_TASK[declared])}); model.kind = '{model_kind}' is not.")
    return fixed or declared


def task_from(pre: Preprocessing, loss: str | None = None) -> Task:
    """The task of fitted data: its kind, classes or target width, and how the chosen loss reads outputs."""
    return task_named(pre.task).from_preprocessing(pre, loss)


def infer_task(values: np.ndarray, labelled: bool = False) -> str:
    """The task of targets a recipe leaves open: strings, booleans and few integral values are labels.

    Args:
      values: the training split's targets.
      labelled: whether the recipe maps target values to classes (``data.label_map``).
    """
    if labelled or values.dtype.kind in "OUSb":
        return "classification"
    if values.ndim > 1 and values.shape[-1] > 1:
        return "regression"
    import numpy as np

    integral = np.all(np.mod(values[np.isfinite(values)], 1) == 0)
    return "classification" if integral and len(np.unique(values)) <= MAX_CLASSES else "regression"
