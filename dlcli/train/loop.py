"""The epoch driver: ``train(loaded, out)`` reads top to bottom.

It knows only "run the compiled chunk over the epoch's batches, collect the
sums, evaluate, decide whether to stop". Models, losses, optimizers and data
come from registries; the step comes from :mod:`dlcli.train.step`.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcli.assemble import Assembled, Predictor, assemble
from dlcli.checkpoint import create_run_dir, save_checkpoint, write_json, write_text
from dlcli.data import Prepared, load_data
from dlcli.errors import DlcliError, choices_text
from dlcli.evaluate import STEP_METRICS, epoch_metrics, outputs_report
from dlcli.optim import build_optimizer, build_schedule
from dlcli.recipe import LoadedRecipe, Recipe, to_toml
from dlcli.train.batches import epoch_indices, make_plan
from dlcli.train.early_stopping import EarlyStopping
from dlcli.train.sharding import placement_for
from dlcli.train.step import TrainState, make_chunk_fn, make_train_step


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def check_metrics(recipe: Recipe, task_kind: str) -> list[str]:
    valid = STEP_METRICS[task_kind]
    unknown = [m for m in recipe.evaluate.metrics if m not in valid]
    if unknown:
        raise DlcliError(f"evaluate.metrics: unknown metric(s) {', '.join(map(repr, unknown))} for a {task_kind} "
                         f"task. Valid: {choices_text(valid)}.")
    return list(recipe.evaluate.metrics)


def check_monitor(stopping: EarlyStopping, has_val: bool, metric_names: list[str]) -> None:
    valid = ["loss", *metric_names] + (["val_loss", *(f"val_{m}" for m in metric_names)] if has_val else [])
    if stopping.monitor not in valid:
        hint = " (there is no validation split: set data.validation_split > 0)" if stopping.monitor.startswith("val_") else ""
        raise DlcliError(f"train.early_stopping.monitor = '{stopping.monitor}' is not a tracked metric{hint}. "
                         f"Valid: {choices_text(valid)}.")


def environment() -> dict[str, Any]:
    versions = {name: metadata.version(name) for name in ("jax", "flax", "optax", "numpy")}
    device = jax.devices()[0]
    return {"versions": {"python": platform.python_version(), **versions},
            "device": f"{device.platform}:{getattr(device, 'device_kind', '')} x{jax.device_count()}"}


def train(loaded: LoadedRecipe, out: Path, reporter) -> RunResult:
    """Train a recipe end to end and write its run directory.

    Args:
      loaded: the validated recipe (see :func:`dlcli.recipe.load_recipe`).
      out: the folder under which ``<name>/<timestamp>/`` is created.
      reporter: receives progress (see :mod:`dlcli.report.console`).
    """
    recipe = loaded.recipe
    started = time.perf_counter()
    data = load_data(recipe.data, recipe.seed, loaded.resolve_path, task=recipe.task)
    built = assemble(recipe, data.preprocessing)
    wanted = check_metrics(recipe, built.task.kind) or built.task.default_metrics
    x_train, y_train = data.splits["train"]
    plan = make_plan(len(x_train), recipe.train.batch_size, recipe.train.chunks_per_epoch)
    total_steps = plan.steps * recipe.train.epochs
    optimizer = build_optimizer(recipe.optimizer, total_steps)
    schedule = build_schedule(recipe.optimizer, total_steps)
    stopping = make_stopping(recipe, "val" in data.splits, wanted)

    run_dir = create_run_dir(out, recipe.name)
    resolved = recipe.model_copy(update={"task": built.task.kind})
    write_text(run_dir / "recipe.toml", f"# resolved from {loaded.source}\n" + to_toml(resolved))
    data.preprocessing.save(run_dir / "preprocessing.json")

    step = make_train_step(built.train_graph, built.loss_fn, optimizer, built.task, recipe.train.l1, recipe.train.l2)
    run_chunk = make_chunk_fn(step)
    predictor = Predictor(built.eval_graph)
    placement = placement_for(plan.batch_size)
    state = placement.put_replicated(
        TrainState(built.params, built.rest, optimizer.init(built.params), jnp.zeros((), jnp.int32)))
    x_all, y_all = placement.put_replicated((x_train, y_train))
    x_val = jax.device_put(data.splits["val"][0]) if "val" in data.splits else None

    reporter.start(recipe.name, recipe.train.epochs, plan.steps, len(x_train), str(run_dir))
    history: list[dict[str, Any]] = []
    best = copy_tree(state)
    last_save, train_seconds, ended = time.perf_counter(), 0.0, "completed"
    metrics_file = (run_dir / "metrics.jsonl").open("a")
    try:
        for epoch in range(1, recipe.train.epochs + 1):
            tick = time.perf_counter()
            idx, weight = epoch_indices(len(x_train), plan, recipe.seed, epoch)
            sums: dict[str, float] = {}
            for chunk in range(plan.chunks):
                state, chunk_sums = run_chunk(state, x_all, y_all, placement.put_batches(idx[chunk]),
                                              placement.put_batches(weight[chunk]))
                chunk_sums = jax.device_get(chunk_sums)
                sums = {k: sums.get(k, 0.0) + float(v) for k, v in chunk_sums.items()}
                reporter.advance(plan.steps_per_chunk)
                if not math.isfinite(sums["loss"]):
                    raise Diverged(epoch, chunk, history)
            seconds = time.perf_counter() - tick
            train_seconds += seconds
            record = {"epoch": epoch, "loss": sums["loss"] / sums["count"]}
            if "correct" in sums:
                record["accuracy"] = sums["correct"] / sums["count"]
            if x_val is not None:
                logits = predictor(state.params, state.rest, x_val)
                report = outputs_report(built.task, built.loss_fn, logits, data.splits["val"][1],
                                        data.preprocessing.classes)
                record.update(epoch_metrics(report, wanted, "val_"))
            record.update(learning_rate=float(schedule(int(state.step) - 1)), time_s=seconds,
                          samples_per_s=len(x_train) / seconds)
            history.append(record)
            metrics_file.write(json_line(record))
            metrics_file.flush()
            reporter.epoch(record)
            is_best, stop = stopping.update(epoch, record.get(stopping.monitor, math.nan))
            if is_best:
                best = copy_tree(state)
            if time.perf_counter() - last_save > recipe.train.checkpoint_seconds:
                save_checkpoint(run_dir / "checkpoints" / "last", state)
                save_checkpoint(run_dir / "checkpoints" / "best", best)
                last_save = time.perf_counter()
            if stop:
                ended = "early_stopped"
                reporter.note(f"early stopping: {stopping.monitor} did not improve by more than "
                              f"{stopping.min_delta} for {stopping.patience} epochs; best epoch {stopping.best_epoch}")
                break
    except Diverged as error:
        ended = "diverged"
        reporter.note(str(error))
    finally:
        metrics_file.close()
        reporter.close()
    save_checkpoint(run_dir / "checkpoints" / "last", state)
    save_checkpoint(run_dir / "checkpoints" / "best", best)
    summary = finish(run_dir, recipe, built, data, predictor, best, history, stopping, ended,
                     train_seconds, time.perf_counter() - started, run_chunk)
    if ended == "diverged":
        raise DlcliError(f"Training diverged: the loss became NaN or infinite in epoch {len(history) + 1}. "
                         f"The last good weights are saved in {run_dir}. Lower optimizer.learning_rate, "
                         "or add optimizer.clip_global_norm.")
    return RunResult(run_dir, summary, history)


class Diverged(Exception):
    def __init__(self, epoch: int, chunk: int, history: list[dict[str, Any]]):
        last = f"{history[-1]['loss']:.6g}" if history else "none"
        super().__init__(f"loss became NaN or infinite in epoch {epoch} (chunk {chunk + 1}); last finite epoch "
                         f"loss {last}")


def make_stopping(recipe: Recipe, has_val: bool, wanted: list[str]) -> EarlyStopping:
    config = recipe.train.early_stopping
    monitor = config.monitor if config else ("val_loss" if has_val else "loss")
    stopping = EarlyStopping(monitor=monitor, mode=EarlyStopping.resolve_mode(monitor, config.mode if config else "auto"),
                             patience=config.patience if config else None, min_delta=config.min_delta if config else 0.0)
    check_monitor(stopping, has_val, [m for m in ("accuracy", *wanted)])
    return stopping


def copy_tree(tree: Any) -> Any:
    """A copy that survives the donation of the original to the next chunk."""
    return jax.tree.map(jnp.copy, tree)


def json_line(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record) + "\n"


def final_split(data: Prepared) -> str:
    return "test" if "test" in data.splits else ("val" if "val" in data.splits else "train")


def finish(run_dir: Path, recipe: Recipe, built: Assembled, data: Prepared, predictor: Predictor, best: TrainState,
           history: list[dict], stopping: EarlyStopping, ended: str, train_seconds: float, wall_seconds: float,
           run_chunk) -> dict[str, Any]:
    """Evaluate the best weights on the held-out split; write summary.json and plots."""
    from dlcli.report.figures import write_run_plots

    split = final_split(data)
    x, y = data.splits[split]
    logits = predictor(best.params, best.rest, jax.device_put(x))
    report = outputs_report(built.task, built.loss_fn, logits, y, data.preprocessing.classes)
    examples = sum(r["samples_per_s"] * r["time_s"] for r in history)
    summary = {
        "recipe": recipe.name,
        "task": built.task.kind,
        "ended": ended,
        "epochs_run": len(history),
        "best_epoch": stopping.best_epoch,
        "monitor": stopping.monitor,
        "evaluated_on": split,
        "final": {k: v for k, v in report.items()},
        "parameters": built.parameter_count,
        "wall_time_s": wall_seconds,
        "train_time_s": train_seconds,
        "samples_per_s": examples / train_seconds if train_seconds else 0.0,
        "compilations": {"train_chunk": run_chunk._cache_size(), "predict": predictor.compilations},
        **environment(),
    }
    write_json(run_dir / "summary.json", summary)
    write_run_plots(run_dir / "plots", history, stopping.best_epoch, built.task, logits, y, report,
                    data.preprocessing.classes)
    return summary
