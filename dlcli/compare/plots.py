"""PNG figures of a compare-activations directory, drawn from its saved files.

The curves are ``dlcli compare``'s (:mod:`dlcli.compare.variant_plots`); the
gradient norms and unit health are the activation diagnostics'. Everything
here reads ``summary.json`` and ``metrics.jsonl`` only, so a comparison can
be re-plotted without retraining:
``write_compare_plots(Path("runs/compare/<recipe>/<timestamp>"))``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dlcli.compare.variant_plots import load, plot_curves
from dlcli.report.plots import new_figure, save_png


def load_comparison(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[int, list[dict]]]]:
    """(summary, histories[activation][seed] = epoch records) of a comparison directory."""
    return load(run_dir)


def write_compare_plots(run_dir: Path) -> list[Path]:
    """val_curves.png (``dlcli compare``'s curves), grad_norms.png and units.png under ``run_dir/plots``."""
    return [write_val_curves(run_dir), *write_diagnostics(run_dir)]


def write_val_curves(run_dir: Path) -> Path:
    summary, histories = load(run_dir)
    return plot_curves(summary, histories, run_dir / "plots" / "val_curves.png")


def write_diagnostics(run_dir: Path) -> list[Path]:
    """grad_norms.png and units.png."""
    summary, histories = load(run_dir)
    return [plot_grad_norms(summary, histories, run_dir / "plots" / "grad_norms.png"),
            plot_units(summary, run_dir / "plots" / "units.png")]


def plot_grad_norms(summary: dict, histories: dict, path: Path) -> Path:
    """Left: gradient norm per layer at init and at the end. Right: first/last layer ratio per epoch."""
    figure = new_figure(11, 4)
    left, right = figure.subplots(1, 2)
    for run in summary["runs"]:
        activation = run["activation"]
        color = None
        for when, style in (("init", "--"), ("final", "-")):
            norms = np.array([m["grad_norms"][when] for m in run["members"]])  # (seeds, layers)
            curve = np.exp(np.log(np.maximum(norms, 1e-30)).mean(axis=0))  # geometric mean over seeds
            line, = left.plot(np.arange(1, curve.size + 1), curve, style, marker="o", color=color,
                              label=f"{activation} ({when})")
            color = line.get_color()
        ratios: dict[int, list[float]] = defaultdict(list)
        for history in histories.get(activation, {}).values():
            for record in history:
                norms = record.get("grad_norms")
                if norms and norms[-1] > 0:
                    ratios[record["epoch"]].append(norms[0] / norms[-1])
        if ratios:
            epochs = sorted(ratios)
            right.plot(epochs, [np.exp(np.mean(np.log(np.maximum(ratios[e], 1e-30)))) for e in epochs],
                       color=color, label=activation)
    left.set(title="gradient norm per layer (dashed: init, solid: end)", xlabel="layer (1 = input side)",
             ylabel="|dL/dW| (geometric mean over seeds)", yscale="log")
    right.set(title="first-layer / last-layer gradient norm", xlabel="epoch", yscale="log")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.has_data():
            axis.legend(fontsize="x-small")
    return save_png(figure, path)


def plot_units(summary: dict, path: Path) -> Path:
    """Left: dead (ReLU-like) or saturated (sigmoid, tanh) share, init vs end. Right: active share at init."""
    rows = summary["activations"]
    names = [row["activation"] for row in rows]
    x = np.arange(len(rows))
    figure = new_figure(max(8, 1.6 * len(rows) + 4), 4)
    left, right = figure.subplots(1, 2)
    for offset, when in ((-0.2, "init"), (0.2, "final")):
        values = [((row["units"] or {}).get(when) or {}).get("mean") or 0.0 for row in rows]
        left.bar(x + offset, values, width=0.4, label=when)
    left.set_xticks(x, labels=[f"{n}\n({row['unit_share'] or 'n/a'})" for n, row in zip(names, rows)],
                    fontsize="small")
    left.set(title="units never active (dead for ReLU) / saturated pre-activations (sigmoid, tanh)", ylabel="share",
             ylim=(0, 1))
    left.legend()
    right.bar(x, [row["active_at_init"]["mean"] or 0.0 for row in rows])
    right.axhline(0.5, color="gray", linestyle="--", label="half")
    right.set_xticks(x, labels=names, fontsize="small")
    right.set(title="active share at initialisation (z > 0)", ylabel="share", ylim=(0, 1))
    right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3, axis="y")
    return save_png(figure, path)
