"""PNG figures for a run directory: learning curves, ROC, confusion matrix
and score histograms.

Figures are built with matplotlib's object API (``Figure`` +
``savefig``), never ``pyplot``: that needs no display, keeps no global
figure list to leak from a long training run, and leaves the backend of a
notebook that imported dlcli untouched. matplotlib is imported inside the
functions so that ``import dlcli`` stays fast.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

VALIDATION_PREFIX = "val_"
ROC_POINTS = 2000


def new_figure(width: float, height: float, layout: str | None = "constrained"):
    """A figure for the object API; ``layout=None`` when the caller places its panels (much faster to save)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def single_axes(width: float, height: float, left: float = 0.75, bottom: float = 0.55, right: float = 0.2,
                top: float = 0.35):
    """(figure, axes) of one panel with fixed margins, in inches: for figures whose labels are known in advance,
    saved in about 60% of a constrained layout's time."""
    figure = new_figure(width, height, layout=None)
    axis = figure.subplots()
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
    return figure, axis


def save_png(figure, path) -> Path:
    """Write the figure to ``path`` atomically: a reader never sees half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    try:
        with os.fdopen(handle, "wb") as file:
            # Fast zlib level: a figure is written in milliseconds, and a few kB larger.
            figure.savefig(file, format="png", dpi=100, pil_kwargs={"compress_level": 1})
        # mkstemp creates the file private (0600); a figure is for everyone to read.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


def _as_number(value) -> float | None:
    """A scalar metric as a float (Python, numpy or JAX scalar), else None."""
    if isinstance(value, str | bool):
        return None
    array = np.asarray(value)
    return float(array) if array.ndim == 0 and array.dtype.kind in "iuf" else None


NOT_CURVES = {"epoch", "time_s", "samples_per_s"}  # bookkeeping, not something the network learned


def metric_families(history: Sequence[dict]) -> list[str]:
    """Metric names without the ``val_`` prefix: loss first, then first-seen order."""
    families: list[str] = []
    for record in history:
        for key, value in record.items():
            name = key.removeprefix(VALIDATION_PREFIX)
            if key not in NOT_CURVES and _as_number(value) is not None and name not in families:
                families.append(name)
    if "loss" in families:
        families.remove("loss")
        families.insert(0, "loss")
    rates = {record.get("learning_rate") for record in history}
    if "learning_rate" in families and len(rates) == 1:
        families.remove("learning_rate")  # a constant learning rate is a setting, not a curve
    return families


def curve(history: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the epochs that recorded ``key``."""
    points = [
        (record.get("epoch", index + 1), _as_number(record[key]))
        for index, record in enumerate(history)
        if key in record and _as_number(record[key]) is not None
    ]
    return [epoch for epoch, _ in points], [value for _, value in points]


def plot_history(history: Sequence[dict], path, *, best_epoch: int | None = None) -> Path:
    """Learning curves: one panel per metric, training and validation together.

    Args:
      history: one dict per epoch, e.g. ``{"epoch": 1, "loss": ..., "val_loss": ...}``;
        a key ``X`` and its ``val_X`` share a panel.
      path: where to write the PNG.
      best_epoch: marked with a dashed vertical line (the checkpoint kept).
    """
    families = metric_families(history) or ["loss"]
    columns = min(3, len(families))
    rows = math.ceil(len(families) / columns)
    width, height = 4.5 * columns, 3.4 * rows
    figure = new_figure(width, height, layout=None)  # a fixed grid: constrained layout doubled its cost
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    figure.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.55 / height, top=1 - 0.35 / height,
                           wspace=0.85 / 4.5 * columns / max(columns - 1, 1) if columns > 1 else 0.2,
                           hspace=0.75 / 3.4 * rows / max(rows - 1, 1) if rows > 1 else 0.2)
    for axis, family in zip(axes, families):
        for key, label in ((family, "train"), (VALIDATION_PREFIX + family, "validation")):
            epochs, values = curve(history, key)
            if values:
                axis.plot(epochs, values, marker="." if len(values) < 30 else None, label=label)
        if best_epoch is not None:
            axis.axvline(best_epoch, color="gray", linestyle="--", label=f"best epoch {best_epoch}")
        axis.set(title=family, xlabel="epoch")
        axis.grid(alpha=0.3)
        if axis.has_data():
            axis.legend()
    for axis in axes[len(families) :]:
        axis.set_visible(False)
    return save_png(figure, path)


def drawn_points(fpr: np.ndarray, tpr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most :data:`ROC_POINTS` points of a curve, evenly spaced along it: a curve of 200,000 thresholds
    draws like one of 2,000, in a fraction of the time (and is sent to the figure process in a fraction of
    the memory)."""
    if len(fpr) <= ROC_POINTS:
        return fpr, tpr
    keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).astype(int))
    return fpr[keep], tpr[keep]


def plot_roc(fpr, tpr, auc: float, path, *, title: str = "ROC") -> Path:
    """ROC curve with its AUC in the legend and the chance diagonal."""
    fpr, tpr = drawn_points(np.asarray(fpr), np.asarray(tpr))
    figure, axis = single_axes(5, 5)
    axis.plot(fpr, tpr, label=f"AUC = {auc:.4f}")
    axis.plot([0, 1], [0, 1], color="gray", linestyle="--", label="chance")
    axis.set(
        title=title,
        xlabel="false positive rate (background efficiency)",
        ylabel="true positive rate (signal efficiency)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        aspect="equal",
    )
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    return save_png(figure, path)


def plot_confusion(matrix, class_names: Sequence[str], path) -> Path:
    """Confusion-matrix heat map, each cell annotated with its count."""
    matrix = np.asarray(matrix)  # (K, K): rows true, columns predicted
    size = max(4.0, 0.6 * len(class_names) + 2.5)
    figure = new_figure(size + 1, size)
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, labels=class_names)
    axis.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    # White text on dark cells, black on light ones, so every count stays legible.
    middle = (matrix.max() + matrix.min()) / 2
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > middle else "black"
        axis.text(column, row, f"{count}", ha="center", va="center", color=color)
    return save_png(figure, path)


def plot_score_histograms(y_true, scores, path, *, bins: int = 50) -> Path:
    """Normalised output-score distributions of signal (1) and background (0).

    The two histograms share their bins, so their overlap shows directly how
    well the classifier separates the classes.
    """
    y_true = np.asarray(y_true).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    edges = np.histogram_bin_edges(scores, bins=bins)
    figure, axis = single_axes(6, 4)
    for label, name in ((0, "background"), (1, "signal")):
        selected = scores[y_true == label]
        if selected.size:
            axis.hist(
                selected, bins=edges, density=True, histtype="step", linewidth=1.5, label=name
            )
    axis.set(xlabel="classifier output", ylabel="density", title="Output score by class")
    if axis.has_data():
        axis.legend()
    return save_png(figure, path)
