"""The epoch driver: ``train(loaded, out)`` and ``resume(run_dir)`` read top to bottom.

It knows only "run the compiled chunk over the epoch's batches, collect the
sums, evaluate, decide whether to stop". Models, losses, optimizers and data
come from registries (see :mod:`dlcli.train.setup`); the step comes from
:mod:`dlcli.train.step`.

Between chunks the driver may checkpoint (every ``train.checkpoint_seconds``,
and on SIGINT/SIGTERM, after which it exits), so a run can be resumed from
any chunk boundary and ends bit-identical to an uninterrupted one: the
state, the best state, the epoch's partial sums, early stopping and the
history are all saved (:mod:`dlcli.train.progress`), and the batch order is
recomputed from (seed, epoch).
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from dlcli.assemble import Predictor
from dlcli.checkpoint import create_run_dir, ensure_writable, run_lock, write_json, write_text
from dlcli.data import Prepared
from dlcli.errors import DlcliError
from dlcli.evaluate import epoch_metrics, outputs_report
from dlcli.optim import learning_rate_scale
from dlcli.recipe import LoadedRecipe, load_recipe, to_toml
from dlcli.report.console import QuietReporter
from dlcli.report.generative import write_epoch_figures, write_task_figures
from dlcli.train.batches import epoch_indices
from dlcli.train.early_stopping import EarlyStopping
from dlcli.train.interrupt import Interrupted, StopRequests
from dlcli.train.progress import Progress, load_resumable, save_resumable
from dlcli.train.setup import Setup, checkpoint_bytes, prepare
from dlcli.train.sharding import is_primary, maybe_initialize_distributed
from dlcli.train.step import TrainState, make_chunk_fn
from dlcli.train.task_steps import make_task_step


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


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
    maybe_initialize_distributed()
    if not is_primary():  # the other processes of a multi-process run compute, process 0 writes
        with tempfile.TemporaryDirectory(prefix="dlcli-worker-") as scratch:
            return train_here(loaded, Path(scratch), QuietReporter())
    return train_here(loaded, out, reporter)


def train_here(loaded: LoadedRecipe, out: Path, reporter) -> RunResult:
    recipe = loaded.recipe
    ensure_writable(out / recipe.name)  # fail before loading data, not after
    setup = prepare(loaded)
    state = setup.initial_state()
    ensure_writable(out / recipe.name, checkpoint_bytes(state))
    run_dir = create_run_dir(out, recipe.name)
    paths = {key: str(loaded.resolve_path(value)) for key in ("path", "val_path", "test_path")
             if (value := getattr(recipe.data, key)) is not None}  # absolute: the run dir must work from anywhere
    resolved = recipe.model_copy(update={"task": setup.built.task.kind, "data": recipe.data.model_copy(update=paths)})
    write_text(run_dir / "recipe.toml", f"# resolved from {loaded.source}\n" + to_toml(resolved))
    setup.data.preprocessing.save(run_dir / "preprocessing.json")
    with run_lock(run_dir):
        return fit(setup, run_dir, reporter, state, copy_tree(state), Progress())


def resume(run_dir: Path, reporter) -> RunResult:
    """Continue an interrupted run in its own directory, from its last checkpoint.

    The run's ``recipe.toml`` is the recipe; the data must still give the
    preprocessing the run fitted. Only the run's own files are rewritten.
    """
    if os.environ.get("DLCLI_COORDINATOR"):
        raise DlcliError("--resume runs in one process: unset DLCLI_COORDINATOR (a multi-process run is resumed "
                         "on one machine, with all its devices).")
    check_resumable(run_dir)
    setup = prepare(load_recipe(str(run_dir / "recipe.toml")))
    fitted = json.loads(json.dumps(asdict(setup.data.preprocessing)))
    if fitted != json.loads((run_dir / "preprocessing.json").read_text()):
        raise DlcliError(f"Cannot resume '{run_dir}': its data no longer gives the same training split and "
                         "preprocessing (the data file changed since the run started). Start a new run.")
    ensure_writable(run_dir, 0, "the resumed run")
    with run_lock(run_dir):
        state, best, progress = load_resumable(run_dir / "checkpoints", setup.initial_state())
        reporter.note(f"resuming {run_dir} at {progress.position}")
        return fit(setup, run_dir, reporter, state, best, progress)


def check_resumable(run_dir: Path) -> None:
    for name in ("recipe.toml", "preprocessing.json"):
        if not (run_dir / name).is_file():
            raise DlcliError(f"--resume '{run_dir}': not a dlcli run directory ({name} is missing). Pass the folder "
                             "that `dlcli train` printed (runs/<recipe>/<timestamp>).")
    summary = run_dir / "summary.json"
    ended = json.loads(summary.read_text()).get("ended") if summary.is_file() else None
    if ended == "diverged":
        raise DlcliError(f"--resume '{run_dir}': this run diverged; resuming would replay the same steps and diverge "
                         "again. Start a new run with a lower optimizer.learning_rate.")
    if ended not in (None, "interrupted"):
        raise DlcliError(f"--resume '{run_dir}': this run already ended ({ended}); there is nothing to resume. "
                         "Start a new run (with more train.epochs) to train longer.")


class Diverged(Exception):
    def __init__(self, epoch: int, step: int, steps: int, last_finite: float):
        self.where = {"epoch": epoch, "step": step, "last_finite_loss": last_finite}
        super().__init__(f"the loss became NaN or infinite in epoch {epoch}, step {step} of {steps}; the last finite "
                         f"loss was {last_finite:.6g}")


def fit(setup: Setup, run_dir: Path, reporter, state: TrainState, best: TrainState, progress: Progress) -> RunResult:
    """Run epochs from ``progress`` to the end, checkpointing, and write the summary."""
    recipe, plan, built = setup.recipe, setup.plan, setup.built
    started = time.perf_counter()
    step = make_task_step(built.train_graph, built.loss_fn, setup.optimizer, built.task, recipe.train.l1,
                           recipe.train.l2, setup.augment)
    run_chunk = make_chunk_fn(step)
    predictor = Predictor(built.eval_graph)
    placement = setup.placement
    state, best = placement.put_replicated((state, best))
    x_train, y_train = setup.data.splits["train"]
    x_all, y_all = setup.device_inputs("train"), placement.put_replicated(y_train)
    stopping = EarlyStopping(**progress.stopping) if progress.stopping else setup.stopping
    checkpoints = run_dir / "checkpoints"
    write_text(run_dir / "metrics.jsonl", "".join(json_line(r) for r in progress.history))  # drop unsaved epochs

    reporter.start(recipe.name, recipe.train.epochs, plan.steps, len(x_train), str(run_dir))
    reporter.advance(progress.chunk * plan.steps_per_chunk)
    last_save, saved = time.perf_counter(), None
    try:
        with StopRequests() as stop, (run_dir / "metrics.jsonl").open("a") as metrics_file:
            while not progress.finished:
                good_state, good = copy_tree(state), progress.snapshot(stopping)  # kept in case the epoch diverges
                idx, weight = epoch_indices(len(x_train), plan, recipe.seed, progress.epoch)
                while progress.chunk < plan.chunks:
                    if stop.requested or time.perf_counter() - last_save > recipe.train.checkpoint_seconds:
                        saved = progress.snapshot(stopping)
                        save_resumable(checkpoints, state, best, saved)
                        last_save = time.perf_counter()
                        if stop.requested:
                            raise interrupted(stop, run_dir, recipe.name, progress, recipe.train.epochs)
                    tick = time.perf_counter()
                    state, sums = run_chunk(state, x_all, y_all, placement.put_batches(idx[progress.chunk]),
                                            placement.put_batches(weight[progress.chunk]))
                    sums = jax.device_get(sums)
                    progress.epoch_seconds += time.perf_counter() - tick
                    check_finite(sums, progress, plan)
                    progress.add(sums)
                    reporter.advance(plan.steps_per_chunk)
                record = epoch_record(setup, predictor, state, progress, len(x_train))
                metrics_file.write(json_line(record))
                metrics_file.flush()
                reporter.epoch(record)
                write_epoch_figures(run_dir, setup, state, progress.epoch)
                if end_epoch(progress, stopping, record, recipe.train.epochs, reporter):
                    best = copy_tree(state)
            save_resumable(checkpoints, state, best, progress.snapshot(stopping))
    except Diverged as error:
        if saved is None or (saved.epoch, saved.chunk) < (good.epoch, good.chunk):
            save_resumable(checkpoints, good_state, best, good)  # never overwrite a good checkpoint with NaNs
        summary = finish(run_dir, setup, predictor, best, good.history, stopping, "diverged",
                         good.train_seconds, time.perf_counter() - started, run_chunk, diverged_at=error.where)
        raise diverged_error(error, good, summary["best_epoch"], run_dir, recipe.optimizer.learning_rate) from None
    finally:
        reporter.close()
    ended = "early_stopped" if len(progress.history) < recipe.train.epochs else "completed"
    summary = finish(run_dir, setup, predictor, best, progress.history, stopping, ended, progress.train_seconds,
                     time.perf_counter() - started, run_chunk, end_of_training=fit_report(setup, predictor, state))
    write_task_figures(run_dir / "plots", setup, state, best)  # autoencoders and GANs: what they learned
    return RunResult(run_dir, summary, progress.history)


def end_epoch(progress: Progress, stopping: EarlyStopping, record: dict[str, Any], epochs: int, reporter) -> bool:
    """Record the finished epoch, advance to the next, decide whether to stop; True if it is the best so far."""
    progress.history.append(record)
    is_best, stop_early = stopping.update(progress.epoch, record.get(stopping.monitor, math.nan))
    progress.train_seconds += progress.epoch_seconds
    progress.next_epoch()
    progress.finished = stop_early or progress.epoch > epochs
    if stop_early:
        reporter.note(f"early stopping: {stopping.monitor} did not improve by more than {stopping.min_delta} for "
                      f"{stopping.patience} epochs; best epoch {stopping.best_epoch}")
    return is_best


def diverged_error(error: Diverged, good: Progress, best_epoch: int, run_dir: Path, learning_rate: float) -> DlcliError:
    return DlcliError(f"Training diverged: {error}. The run stopped; the last good checkpoint ({good.position}) and "
                      f"the best weights (epoch {best_epoch}) are kept in {run_dir}, and summary.json says "
                      f"\"ended\": \"diverged\". Lower optimizer.learning_rate (now {learning_rate:g}), or set "
                      "optimizer.clip_global_norm = 1.0.")


def check_finite(sums: dict[str, Any], progress: Progress, plan) -> None:
    """Raise :class:`Diverged` naming the first step whose loss was NaN or infinite."""
    at = int(sums["nonfinite_at"])
    if at < 0 and math.isfinite(float(sums["loss"])):
        return
    at = max(at, 0)
    last = float(sums["last_finite_loss"])
    if not math.isfinite(last):  # the chunk's first step: fall back on what came before it
        if progress.sums.get("count"):
            last = progress.sums["loss"] / progress.sums["count"]
        elif progress.history:
            last = progress.history[-1]["loss"]
    raise Diverged(progress.epoch, progress.chunk * plan.steps_per_chunk + at + 1, plan.steps, last)


def interrupted(stop: StopRequests, run_dir: Path, name: str, progress: Progress, epochs: int) -> Interrupted:
    """Record the interruption in summary.json and build the exception that says how to resume."""
    write_json(run_dir / "summary.json", {"recipe": name, "ended": "interrupted", "signal": stop.name,
                                          "epochs_run": len(progress.history), "epoch": progress.epoch,
                                          "chunk": progress.chunk, "resume": f"dlcli train --resume {run_dir}"})
    return Interrupted(stop.signum, f"interrupted by {stop.name} at {progress.position} of {epochs}; the state is "
                                    f"saved in {run_dir / 'checkpoints'}. Resume with: dlcli train --resume {run_dir}")


def epoch_record(setup: Setup, predictor: Predictor, state: TrainState, progress: Progress, examples: int) -> dict:
    """The epoch's line in metrics.jsonl: training sums, validation metrics, learning rate, speed."""
    sums, built = progress.sums, setup.built
    record = {"epoch": progress.epoch, "loss": sums["loss"] / sums["count"]}
    if "correct" in sums:
        record["accuracy"] = sums["correct"] / sums["count"]
    record.update({key: value / sums["count"] for key, value in sums.items() if key.endswith("_loss")})  # a GAN's two
    if "val" in setup.data.splits:
        y_val = setup.data.splits["val"][1]
        logits = predictor(state.params, state.rest, setup.device_inputs("val"))
        report = outputs_report(built.task, built.loss_fn, logits, y_val, setup.data.preprocessing.classes)
        record.update(epoch_metrics(report, setup.wanted, "val_"))
    learning_rate = float(setup.schedule(int(state.step) - 1)) * learning_rate_scale(state.opt_state)
    seconds = max(progress.epoch_seconds, 1e-9)
    record.update(learning_rate=learning_rate, time_s=seconds, samples_per_s=examples / seconds)
    return record


def fit_report(setup: Setup, predictor: Predictor, state: TrainState) -> dict[str, dict[str, float]]:
    """Loss and accuracy of the last weights on the training and validation splits, in evaluation mode.

    The train/val gap of the finished network: how much it fits the examples
    it saw better than the ones it did not (overfitting, see overfit-demo).
    """
    out: dict[str, dict[str, float]] = {}
    if not setup.built.task.supervised:
        return out
    for split in ("train", "val"):
        if split in setup.data.splits:
            y = setup.data.splits[split][1]
            logits = predictor(state.params, state.rest, setup.device_inputs(split))
            report = outputs_report(setup.built.task, setup.built.loss_fn, logits, y, setup.data.preprocessing.classes)
            out[split] = {k: report[k] for k in ("loss", "accuracy", "mse") if k in report}
    return out


def copy_tree(tree: Any) -> Any:
    """A copy that survives the donation of the original to the next chunk."""
    return jax.tree.map(jnp.copy, tree)


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"


def final_split(data: Prepared) -> str:
    return "test" if "test" in data.splits else ("val" if "val" in data.splits else "train")


def finish(run_dir: Path, setup: Setup, predictor: Predictor, best: TrainState, history: list[dict],
           stopping: EarlyStopping, ended: str, train_seconds: float, wall_seconds: float, run_chunk,
           **extra: Any) -> dict[str, Any]:
    """Evaluate the best weights on the held-out split; write summary.json and plots."""
    from dlcli.report.figures import write_run_plots

    data, built = setup.data, setup.built
    split = final_split(data)
    y = data.splits[split][1]
    logits = predictor(best.params, best.rest, setup.device_inputs(split))
    report = outputs_report(built.task, built.loss_fn, logits, y, data.preprocessing.classes)
    examples = sum(r["samples_per_s"] * r["time_s"] for r in history)
    summary = {
        "recipe": setup.recipe.name,
        "task": built.task.kind,
        "ended": ended,
        **extra,
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
