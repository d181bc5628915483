"""Several runs' learning curves overlaid in one figure (``dlcli runs compare``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from dlcli.report.plots import VALIDATION_PREFIX, curve, metric_families, new_figure, save_png

MAX_PANELS = 6
PANEL_WIDTH, PANEL_HEIGHT = 4.8, 3.6


def plot_overlay(lines: Sequence[tuple[str, Sequence[dict]]], path) -> Path:
    """One panel per metric; in each, every run's validation curve (solid) and training curve (dashed).

    Args:
      lines: (label, epoch records) per run; a run keeps its colour in every panel.
      path: where to write the PNG.
    """
    families: list[str] = []
    for _, history in lines:
        families += [name for name in metric_families(history) if name not in families]
    families = families[:MAX_PANELS] or ["loss"]
    columns = min(3, len(families))
    rows = math.ceil(len(families) / columns)
    figure = new_figure(PANEL_WIDTH * columns, PANEL_HEIGHT * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    for axis, family in zip(axes, families):
        for index, (label, history) in enumerate(lines):
            draw_run(axis, history, family, label, f"C{index % 10}")
        axis.set(title=family, xlabel="epoch")
        axis.grid(alpha=0.3)
    for axis in axes[len(families):]:
        axis.set_visible(False)
    if axes[0].has_data():
        axes[0].legend(fontsize="small")
    figure.suptitle("solid: validation, dashed: training")
    return save_png(figure, path)


def draw_run(axis, history: Sequence[dict], family: str, label: str, color: str) -> None:
    """One run's training and validation curves of ``family``, labelled once."""
    for key, style in ((VALIDATION_PREFIX + family, "-"), (family, "--")):
        epochs, values = curve(history, key)
        if values:
            axis.plot(epochs, values, linestyle=style, color=color, marker="." if len(values) < 30 else None,
                      label=label)
            label = None  # the legend names each run once
