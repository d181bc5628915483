"""Metrics of a model over a split, and ``dlcli evaluate RUN_DIR``."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dlcli.tasks import Task


def outputs_report(task: Task, loss_fn, logits: np.ndarray, y: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
    """Loss and every metric of the task for model outputs ``logits`` on targets ``y``."""
    losses = np.asarray(jax.jit(loss_fn)(logits, y))
    report: dict[str, Any] = {"loss": float(losses.mean()), "examples": int(len(y))}
    predictions = np.asarray(task.link(logits))
    if not np.isfinite(predictions).all():
        report["diverged"] = True
        return report
    report.update(task.report(predictions, y, classes))
    return report


def epoch_metrics(report: dict[str, Any], wanted: list[str], prefix: str) -> dict[str, float]:
    """The scalar metrics a recipe asks for, keyed like ``val_auc``."""
    out = {f"{prefix}loss": report["loss"]}
    for name in wanted:
        if isinstance(report.get(name), (int, float)):
            out[f"{prefix}{name}"] = float(report[name])
    return out
