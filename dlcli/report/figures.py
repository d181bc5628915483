"""The PNG figures a run directory gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlcli import metrics
from dlcli.report import figure_process
from dlcli.report.plots import drawn_points
from dlcli.tasks import Task


def curve_plots(folder: Path, history: list[dict[str, Any]], best_epoch: int | None) -> list[figure_process.Call]:
    """The learning curves of every run (see :mod:`dlcli.report.figure_process`): drawn while its weights are judged."""
    if not history:
        return []
    return [("plot_history", (list(history), folder / "curves.png"), {"best_epoch": best_epoch or None})]


def judged_plots(folder: Path, task: Task, predictions: np.ndarray, y: np.ndarray, report: dict[str, Any],
                 classes: list[str] | None) -> list[figure_process.Call]:
    """The figures of a classifier's judged weights: a confusion matrix, and for a binary one its ROC and score
    histograms. ``predictions`` are the linked outputs (``task.link``): a binary model's scores."""
    if report.get("diverged") or not task.classifies:
        return []
    confusion = ("plot_confusion", (np.asarray(report["confusion_matrix"]), classes, folder / "confusion_matrix.png"),
                 {})
    if not (task.binary and "auc" in report):
        return [confusion]
    scores = np.asarray(predictions)
    fpr, tpr = drawn_points(*metrics.roc_curve(y, scores)[:2])
    # In this order the figure process draws the ROC and the histograms while a copy of it draws the confusion
    # matrix, the slowest of the three (its layout adapts to the class names): the two halves take as long.
    return [("plot_roc", (fpr, tpr, report["auc"], folder / "roc.png"), {}), confusion,
            ("plot_score_histograms", (y, scores, folder / "scores.png"), {})]
