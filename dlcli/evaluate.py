"""Metrics of a model over a split, and ``dlcli evaluate RUN_DIR``."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dlcli.tasks import Task


def outputs_report(task: Task, loss_fn, logits: np.ndarray, y: np.ndarray, classes: list[str] | None,
                   losses: np.ndarray | None = None, predictions: np.ndarray | None = None) -> dict[str, Any]:
    """Loss and every metric of the task for model outputs ``logits`` on targets ``y``.

    ``losses`` (per example) and ``predictions`` (``task.link(logits)``) are
    computed here unless the caller's compiled program already did
    (:meth:`dlcli.assemble.Predictor.judge`).
    """
    losses = np.asarray(jax.jit(loss_fn)(logits, y)) if losses is None else losses
    report: dict[str, Any] = {"loss": float(losses.mean()), "examples": int(len(y))}
    predictions = np.asarray(task.link(logits)) if predictions is None else predictions
    if not np.isfinite(predictions).all():
        report["diverged"] = True
        return report
    report.update(task.report(predictions, y, classes))
    return report
