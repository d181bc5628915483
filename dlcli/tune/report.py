"""What a study shows: a line per trial as it finishes, the final table, and the plots.

Plots (``plots/``): ``objective.png``, every finished trial's value against
its number with the running best; ``params.png``, the value against each
parameter; ``importances.png``, Optuna's PED-ANOVA importances, once enough
trials completed for them to mean something. They are drawn by the figure
process (:mod:`dlcli.report.figure_process`), which imported matplotlib
while the trials trained, from plain numbers: the importances are computed
here, where the data set usually brought scikit-learn already (Optuna's
importance module imports its forests: 2 s of CPU in a fresh process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcli.recipe import TuneConfig, toml_value

MIN_FOR_IMPORTANCE = 5  # completed trials before importances are drawn


def trial_line(row: dict[str, Any]) -> str:
    """``trial 3   complete  0.0912  optimizer.learning_rate=0.0031 model.hidden=[64]``."""
    value = "-" if row["value"] is None else f"{row['value']:.4g}"
    values = " ".join(f"{key}={format_value(v)}" for key, v in row["values"].items())
    return f"trial {row['number']:<4} {row['state']:<8} {value:>9}  {values}"


def format_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else toml_value(value)


def print_tune(tune_dir: Path, summary: dict[str, Any]) -> None:
    """The study's trials (``trials.jsonl``, resumed sessions included), best first, and where its files are."""
    import json

    from dlcli.compare.table import print_rows
    from dlcli.report.console import make_console

    trials_file = tune_dir / "trials.jsonl"
    rows = [json.loads(line) for line in trials_file.read_text().splitlines()] if trials_file.is_file() else []
    console = make_console()
    reverse = summary["direction"] == "maximize"
    ranked = sorted(rows, key=lambda r: (r["state"] != "complete", -(r["value"] or 0) if reverse else (r["value"] or 0)))
    headers = ["trial", "state", summary["monitor"], *summary["space"], "epochs"]
    cells = [[str(row["number"]), row["state"], "-" if row["value"] is None else f"{row['value']:.4g}",
              *(format_value(row["values"][key]) for key in summary["space"]), str(row["epochs"])] for row in ranked]
    if cells:
        print_rows(console, f"{summary['recipe']}: {summary['monitor']} ({summary['direction']})", headers, cells)
    counts = summary["trials"]
    console.print(f"{counts['finished']} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
                  f"{counts['fail']} failed; {summary['wall_time_s']:.1f} s")
    best = summary["best"]
    if best:
        console.print(f"best: trial {best['number']}, {summary['monitor']} = {best['value']:.4g}, "
                      + " ".join(f"{k}={format_value(v)}" for k, v in best["values"].items()))
        console.print(f"dlcli train {best['recipe']}")
    console.print(f"study: {tune_dir}")


@dataclass(frozen=True)
class Point:
    """A completed trial as the figures read it (plain data: the figure process need not import Optuna)."""

    number: int
    value: float
    params: dict[str, Any]


def figure_calls(study, folder: Path, config: TuneConfig) -> tuple[list[Any], list[str]]:
    """The figure process's call that draws the study's figures, and the files it writes."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return [], []
    points = [Point(trial.number, trial.value, dict(trial.params)) for trial in complete]
    analysed = complete if len(complete) >= MIN_FOR_IMPORTANCE else None  # importances, in the figure process
    names = ["objective.png", "params.png"] + (["importances.png"] if analysed else [])
    minimize = study.direction.name == "MINIMIZE"
    return ([("dlcli.tune.report:draw_figures", (points, minimize, analysed, folder, config), {})],
            [str(folder / name) for name in names])


def draw_figures(points: list[Point], minimize: bool, analysed: list[Any] | None, folder: Path,
                 config: TuneConfig) -> None:
    """The completed trials' figures (see :func:`figure_calls`); ``analysed``: the completed trials whose
    parameter importances Optuna's PED-ANOVA draws, or None (too few)."""
    plot_objective(points, minimize, folder / "objective.png", config.monitor)
    plot_params(points, folder / "params.png", config)
    if analysed:
        plot_importances(importances_of(analysed, minimize), folder / "importances.png")


def importances_of(trials: list[Any], minimize: bool) -> dict[str, float]:
    """Optuna's PED-ANOVA parameter importances of completed ``trials`` (FrozenTrials)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if minimize else "maximize")
    study.add_trials(trials)
    return optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())


def plot_objective(trials: list, minimize: bool, path: Path, monitor: str) -> Path:
    from dlcli.report.plots import new_figure, save_png

    numbers = [t.number for t in trials]
    values = [t.value for t in trials]
    best, running = math.inf if minimize else -math.inf, []
    for value in values:
        best = min(best, value) if minimize else max(best, value)
        running.append(best)
    figure = new_figure(6, 4)
    axes = figure.add_subplot()
    axes.scatter(numbers, values, s=14, label="trial")
    axes.step(numbers, running, where="post", color="C3", label="best so far")
    axes.set(xlabel="trial", ylabel=monitor, title=f"{monitor} by trial")
    axes.legend()
    return save_png(figure, path)


def plot_params(trials: list, path: Path, config: TuneConfig) -> Path:
    """The value against each parameter: log axes for log ranges, choices in their listed order."""
    from dlcli.recipe import TuneRange
    from dlcli.report.plots import new_figure, save_png
    from dlcli.tune.space import stored

    keys = list(config.space)
    width, height = 4 * len(keys), 3.5
    figure = new_figure(width, height, layout=None)  # a fixed row of panels: constrained layout took 0.5 s
    figure.subplots_adjust(left=0.8 / width, right=1 - 0.2 / width, bottom=0.6 / height, top=1 - 0.2 / height,
                           wspace=0.9 / (4 - 0.9))
    for i, key in enumerate(keys):
        axes = figure.add_subplot(1, len(keys), i + 1)
        spec = config.space[key]
        values = [t.value for t in trials]
        if isinstance(spec, TuneRange):
            axes.scatter([t.params[key] for t in trials], values, s=14)
            axes.set_xscale("log" if spec.log else "linear")
        else:
            labels = [str(t.params[key]) for t in trials]
            order = [str(stored(choice)) for choice in spec]
            axes.scatter([order.index(label) for label in labels], values, s=14)
            axes.set_xticks(range(len(order)), order)
        axes.set(xlabel=key, ylabel=config.monitor if i == 0 else None)
    return save_png(figure, path)


def plot_importances(importances: dict[str, float], path: Path) -> Path:
    from dlcli.report.plots import new_figure, save_png

    figure = new_figure(6, 0.6 + 0.5 * len(importances))
    axes = figure.add_subplot()
    keys = list(importances)[::-1]
    axes.barh(keys, [importances[key] for key in keys])
    axes.set(xlabel="importance (PED-ANOVA)", title="parameter importances")
    return save_png(figure, path)
