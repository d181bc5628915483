"""PNG figures of a ``dlcli compare`` directory, drawn from its saved files only.

- ``curves.png``: the primary metric and the losses of each variant (mean
  over seeds, band min-max) against epochs, and against training seconds,
  the fair axis when variants do different work per epoch (batch sizes);
- ``by_value.png``: for one numeric key (a learning-rate sweep), the judged
  primary metric against the value, each seed a dot, the mean a line.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dlcli.report.plots import new_figure, save_png


def load(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[int, list[dict]]]]:
    """(summary, histories[variant][seed] = epoch records)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    histories: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            label = record["variant"] if "variant" in record else record["activation"]  # older compare-activations
            histories[label][record["seed"]].append(record)
    return summary, histories


def write_curves(run_dir: Path) -> Path:
    summary, histories = load(run_dir)
    return plot_curves(summary, histories, run_dir / "plots" / "curves.png")


def write_by_value(run_dir: Path) -> list[Path]:
    """``by_value.png`` when one numeric key varies; else nothing."""
    summary = json.loads((run_dir / "summary.json").read_text())
    if len(summary["varied"]) != 1:
        return []
    key = summary["varied"][0]
    if all(isinstance(r["values"].get(key), (int, float)) and not isinstance(r["values"].get(key), bool)
           for r in summary["variants"]):
        return [plot_by_value(summary, run_dir / "plots" / "by_value.png")]
    return []


def band(runs: dict[int, list[dict]], key: str, axis: str) -> tuple[np.ndarray, ...]:
    """(x, mean, low, high) of ``key`` over seeds; x is the epoch or the cumulative training seconds."""
    by_epoch: dict[int, list[float]] = defaultdict(list)
    seconds: dict[int, list[float]] = defaultdict(list)
    for history in runs.values():
        elapsed = 0.0
        for record in history:
            elapsed += record.get("time_s", 0.0)
            if isinstance(record.get(key), (int, float)) and np.isfinite(record[key]):
                by_epoch[record["epoch"]].append(record[key])
                seconds[record["epoch"]].append(elapsed)
    epochs = sorted(by_epoch)
    x = np.array(epochs, float) if axis == "epoch" else np.array([np.mean(seconds[e]) for e in epochs])
    values = [np.array(by_epoch[e]) for e in epochs]
    return x, np.array([v.mean() for v in values]), np.array([v.min() for v in values]), \
        np.array([v.max() for v in values])


def plot_curves(summary: dict, histories: dict, path: Path) -> Path:
    keys = list(dict.fromkeys([summary["primary"], "val_loss" if summary["primary"] != "loss" else "loss", "loss"]))
    width, height = 4.6 * len(keys), 7.2
    figure = new_figure(width, height, layout=None)  # a fixed grid: constrained layout took a third of its time
    figure.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.35 / height,
                           wspace=0.25, hspace=0.3)
    axes = np.atleast_2d(figure.subplots(2, len(keys), squeeze=False))
    order = summary["ranking"] + [v["variant"] for v in summary["variants"] if v["variant"] not in summary["ranking"]]
    for row, axis_name in enumerate(("epoch", "seconds")):
        for axis, key in zip(axes[row], keys):
            for variant in order:
                x, mean, low, high = band(histories.get(variant, {}), key, axis_name)
                if len(x):
                    line, = axis.plot(x, mean, label=variant)
                    axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
            axis.set(title=key, xlabel="epoch" if axis_name == "epoch" else "training seconds")
            if key.endswith("loss"):
                axis.set_yscale("log")
            axis.grid(alpha=0.3)
    if axes[0][0].has_data():
        axes[0][0].legend(fontsize="small")
    return save_png(figure, path)


def plot_by_value(summary: dict, path: Path) -> Path:
    key, primary = summary["varied"][0], summary["primary"]
    figure = new_figure(5.5, 4)
    axis = figure.subplots()
    rows = sorted(summary["variants"], key=lambda r: r["values"][key])
    values = [r["values"][key] for r in rows]
    for row in rows:
        run = next(r for r in summary["runs"] if r["variant"] == row["variant"])
        points = [m["final"].get(primary) for m in run["members"]]
        axis.scatter([row["values"][key]] * len(points), points, color="gray", s=12)
    means = [(r["final"].get(primary) or {}).get("mean") for r in rows]
    axis.plot(values, [np.nan if m is None else m for m in means], marker="o", label="mean over seeds")
    if min(values) > 0 and max(values) / min(values) >= 100:
        axis.set_xscale("log")
    axis.set(xlabel=key, ylabel=primary, title=f"{primary} by {key}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return save_png(figure, path)
