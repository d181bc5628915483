"""The end of a run: its best weights judged, summary.json and the figures.

The figures are sent to the figure process (:mod:`dlcli.report.figure_process`)
as soon as they can be drawn: the learning curves when training ends, while
the best weights are judged; the judged weights' figures (confusion matrix,
ROC, scores) then, while the run writes its last checkpoint and its summary.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

from dlcli import metrics
from dlcli.assemble import Predictor
from dlcli.checkpoint import write_json
from dlcli.engine.driver import Engine, Progress
from dlcli.engine.program import Carry
from dlcli.evaluate import outputs_report
from dlcli.report import figure_process
from dlcli.train.setup import Setup
from dlcli.train.sharding import is_primary
from dlcli.train.step import TrainState


def environment() -> dict[str, Any]:
    versions = {name: metadata.version(name) for name in ("jax", "flax", "optax", "numpy")}
    device = jax.devices()[0]
    return {"versions": {"python": platform.python_version(), **versions},
            "device": f"{device.platform}:{getattr(device, 'device_kind', '')} x{jax.device_count()}"}


TRAIN_ROWS_JUDGED = 65_536  # training rows the end-of-training report judges at least (all, when fewer)


def fit_report(setup: Setup, predictor: Predictor, state: TrainState, judged: "Judged | None" = None
               ) -> dict[str, dict[str, float]]:
    """Loss and accuracy of the last weights on the training and validation splits, in evaluation mode.

    The train/val gap of the finished network: how much it fits the examples
    it saw better than the ones it did not (overfitting, see overfit-demo).
    A large training split is judged on as many of its rows as the
    validation split has (at least :data:`TRAIN_ROWS_JUDGED`), drawn with the
    recipe's seed: the same program judges both, and the gap is measured
    like with like (``examples`` says how many rows).
    ``judged``: the best weights' judgement, reused for its split when the
    last weights are the best ones (a forward pass over it spared).
    """
    built, out = setup.built, {}
    if not built.task.supervised:
        return out
    for split in ("train", "val"):
        if split in setup.data.splits:  # loss and accuracy (or MSE) only: no full report of a large training split
            x, y = setup.data.splits[split]
            if judged is not None and judged.split == split:
                loss, predictions = judged.report["loss"], judged.predictions
            else:
                inputs, y = (judged_sample(setup, x, y) if split == "train" and isinstance(x, np.ndarray)
                             else (setup.device_inputs(split), y))
                _, losses, predictions = predictor.judge(built, state.params, state.rest, inputs, y)
                loss = float(losses.mean())
            if not np.isfinite(predictions).all():
                out[split] = {"loss": loss}
            elif built.task.classifies:
                out[split] = {"loss": loss, "accuracy": float(np.mean(metrics.predicted_classes(predictions) == y))}
            else:
                errors = (np.asarray(predictions, np.float64).reshape(len(y), -1)
                          - np.asarray(y, np.float64).reshape(len(y), -1))
                out[split] = {"loss": loss, "mse": float(np.mean(errors ** 2))}
            out[split]["examples"] = int(len(y))
    return out


def judged_sample(setup: Setup, x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """The training rows the end-of-training report judges: all of them, or a seeded draw of as many as the
    validation split has (at least :data:`TRAIN_ROWS_JUDGED`), placed as the splits are."""
    val = setup.data.splits.get("val")
    rows = max(len(val[1]) if val is not None else 0, TRAIN_ROWS_JUDGED)
    if len(y) <= rows:
        return setup.device_inputs("train"), y
    chosen = np.sort(np.random.default_rng(setup.recipe.seed).choice(len(y), rows, replace=False))
    return setup.placement.put_replicated(x[chosen]), y[chosen]  # a fancy index: a fresh contiguous copy


def split_report(setup: Setup, predictor: Predictor, state: TrainState, split: str
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(outputs, linked predictions, report) of ``state``'s weights on one split."""
    built, y = setup.built, setup.data.splits[split][1]
    outputs, losses, predictions = predictor.judge(built, state.params, state.rest, setup.device_inputs(split), y)
    report = outputs_report(built.task, built.loss_fn, outputs, y, setup.data.preprocessing.classes, losses,
                            predictions)
    return outputs, predictions, report


def process_started() -> float:
    """When this process started, as ``time.time()`` (Linux's /proc; elsewhere, when dlcli was imported)."""
    import os

    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        import dlcli

        return dlcli.IMPORTED


@dataclass
class Judged:
    """The best weights judged on the held-out split."""

    split: str
    predictions: np.ndarray  # linked outputs
    report: dict[str, Any]


def judge_best(run_dir: Path, setup: Setup, carry: Carry, progress: Progress, engine: Engine) -> Judged:
    """Evaluate the best weights on the held-out split; the run's figures are drawn meanwhile and after."""
    from dlcli.report.figures import curve_plots, judged_plots

    data, plots = setup.data, run_dir / "plots"
    primary = is_primary()  # the others' run directory is a scratch folder, removed when they end: no figures there
    if primary:
        figure_process.send(curve_plots(plots, progress.history, int(carry.stop.best_epoch)))
    split = data.judged_split
    _, predictions, report = split_report(setup, engine.predictor, carry.best, split)
    if primary:
        figure_process.send(judged_plots(plots, setup.built.task, predictions, data.splits[split][1], report,
                                         data.preprocessing.classes))
    return Judged(split, predictions, report)


def finish(run_dir: Path, setup: Setup, carry: Carry, progress: Progress, ended: str, wall_seconds: float,
           engine: Engine, judged: Judged | None = None, **extra: Any) -> dict[str, Any]:
    """Write summary.json and the figures of the best weights (judged here unless ``judged`` is given)."""
    built, history = setup.built, progress.history
    judged = judged or judge_best(run_dir, setup, carry, progress, engine)
    split, report = judged.split, judged.report
    if extra.get("end_of_training") is None:
        extra.pop("end_of_training", None)
    examples = sum(r["samples_per_s"] * r["time_s"] for r in history)
    best_epoch = int(carry.stop.best_epoch)
    summary = {
        "recipe": setup.recipe.name,
        "task": built.task.kind,
        "ended": ended,
        **extra,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "monitor": setup.stopping.monitor,
        "evaluated_on": split,
        "final": {k: v for k, v in report.items()},
        "parameters": built.parameter_count,
        "wall_time_s": wall_seconds,
        "train_time_s": progress.train_seconds,
        "samples_per_s": examples / progress.train_seconds if progress.train_seconds else 0.0,
        "epochs_per_call": engine.layout.rows_per_call if engine.layout.rows_per_epoch == 1 else 0,
        "compile_s": engine.compile_seconds,  # the training program's, compiled or loaded from the cache
        "compiled_for": engine.compiled_for,
        "compilations": setup.compilations.since(),
        "first_step_s": engine.first_call_done - process_started() if engine.first_call_done else None,
        **({"data": setup.data.reading.record()} if setup.data.reading is not None else {}),
        **environment(),
    }
    write_json(run_dir / "summary.json", summary)
    figure_process.wait()
    return summary
