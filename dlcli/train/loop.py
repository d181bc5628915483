"""A run: ``train(loaded, out)`` and ``resume(run_dir)`` read top to bottom.

The engine (:mod:`dlcli.engine`) trains; this module wraps it in what makes
a run directory: the resolved recipe and preprocessing before training,
metrics.jsonl as epochs end, checkpoints every ``train.checkpoint_seconds``
and on SIGINT/SIGTERM (after which it exits), and the final checkpoints,
summary and plots after (:mod:`dlcli.train.ending`). A run can be resumed
from any call boundary and ends bit-identical to an uninterrupted one: the engine's carry (state, best
state, early stopping, the epoch's partial sums) and the history are saved
(:mod:`dlcli.train.progress`), and the batch order is recomputed from
(seed, epoch).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax

from dlcli.checkpoint import create_run_dir, ensure_writable, run_lock, write_json, write_text
from dlcli.engine.driver import Diverged, Engine, Progress
from dlcli.engine.program import Carry
from dlcli.errors import DlcliError
from dlcli.read_ahead import ReadAhead
from dlcli.recipe import LoadedRecipe, load_recipe, to_toml
from dlcli.report import figure_process
from dlcli.report.console import QuietReporter
from dlcli.report.generative import write_epoch_figures, write_task_figures
from dlcli.report.tensorboard import ScalarLog
from dlcli.train.ending import finish, fit_report, judge_best
from dlcli.train.interrupt import Interrupted, StopRequests
from dlcli.train.progress import load_resumable, save_resumable
from dlcli.train.setup import Setup, checkpoint_bytes, prepare
from dlcli.train.sharding import is_primary, maybe_initialize_distributed
from dlcli.train.step import TrainState


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def train(loaded: LoadedRecipe, out: Path, reporter, ahead: ReadAhead | None = None) -> RunResult:
    """Train a recipe end to end and write its run directory.

    Args:
      loaded: the validated recipe (see :func:`dlcli.recipe.load_recipe`).
      out: the folder under which ``<name>/<timestamp>/`` is created.
      reporter: receives progress (see :mod:`dlcli.report.console`).
      ahead: the recipe's data, being read since the recipe was checked (one process only).
    """
    maybe_initialize_distributed()
    if not is_primary():  # the other processes of a multi-process run compute, process 0 writes
        with tempfile.TemporaryDirectory(prefix="dlcli-worker-") as scratch:
            return train_here(loaded, Path(scratch), QuietReporter())
    try:
        return train_here(loaded, out, reporter, ahead)
    finally:
        figure_process.stop()  # unused when the run failed or stopped before its figures


def train_here(loaded: LoadedRecipe, out: Path, reporter, ahead: ReadAhead | None = None) -> RunResult:
    recipe = loaded.recipe
    ensure_writable(out / recipe.name)  # fail before loading data, not after
    setup = prepare(loaded, data=ahead.result() if ahead is not None else None)
    if is_primary():  # the recipe and its data are sound: this run will draw its figures
        figure_process.start()
    state = setup.initial_state()
    ensure_writable(out / recipe.name, checkpoint_bytes(state))
    run_dir = create_run_dir(out, recipe.name)
    paths = {key: str(loaded.resolve_path(value)) for key in ("path", "val_path", "test_path")
             if (value := getattr(recipe.data, key)) is not None}  # absolute: the run dir must work from anywhere
    resolved = recipe.model_copy(update={"task": setup.built.task.kind, "data": recipe.data.model_copy(update=paths)})
    write_text(run_dir / "recipe.toml", f"# resolved from {loaded.source}\n" + to_toml(resolved))
    setup.data.preprocessing.save(run_dir / "preprocessing.json")
    try:
        with run_lock(run_dir):
            return fit(setup, run_dir, reporter, state, Progress())
    finally:
        setup.data.close()  # the held-out rows a streamed run kept on disk


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
    figure_process.start()
    try:
        with run_lock(run_dir):
            return fit(setup, run_dir, reporter, setup.initial_state(), Progress(), carry_from=run_dir / "checkpoints")
    finally:
        setup.data.close()
        figure_process.stop()


def check_resumable(run_dir: Path) -> None:
    if not (run_dir / "recipe.toml").is_file():
        raise DlcliError(f"--resume '{run_dir}': not a dlcli run directory (recipe.toml is missing). Pass the folder "
                         "that `dlcli train` printed (runs/<recipe>/<timestamp>).")
    if not (run_dir / "preprocessing.json").is_file():
        raise DlcliError(f"--resume '{run_dir}': this run stopped before training began (preprocessing.json was never "
                         f"written), so there is nothing to resume. Start it again: dlcli train {run_dir / 'recipe.toml'}.")
    summary = run_dir / "summary.json"
    ended = json.loads(summary.read_text()).get("ended") if summary.is_file() else None
    if ended == "diverged":
        raise DlcliError(f"--resume '{run_dir}': this run diverged; resuming would replay the same steps and diverge "
                         "again. Start a new run with a lower optimizer.learning_rate.")
    if ended not in (None, "interrupted"):
        raise DlcliError(f"--resume '{run_dir}': this run already ended ({ended}); there is nothing to resume. "
                         "Start a new run (with more train.epochs) to train longer.")


def fit(setup: Setup, run_dir: Path, reporter, state: TrainState, progress: Progress,
        carry_from: Path | None = None) -> RunResult:
    """Run epochs from ``progress`` to the end, checkpointing, and write the summary.

    Args:
      carry_from: a checkpoint folder to restore the engine's carry from (``--resume``).
    """
    recipe = setup.recipe
    started = time.perf_counter()
    engine = Engine(setup, [recipe.seed])
    carry = engine.member_carry(state)
    if carry_from is not None:
        carry, progress = load_resumable(carry_from, carry)
    carry = engine.stack([carry])
    checkpoints = run_dir / "checkpoints"
    write_text(run_dir / "metrics.jsonl", "".join(json_line(r) for r in progress.history))  # drop unsaved epochs
    if carry_from is not None:
        reporter.note(f"resuming {run_dir} at {progress.position}")
    reporter.start(recipe.name, recipe.train.epochs, engine.layout.plan.steps, engine.examples, str(run_dir))
    reporter.advance(progress.chunk * engine.layout.plan.steps_per_chunk)
    if setup.data.reading is not None:
        reporter.note(setup.data.reading.line())
    last_save = time.perf_counter()

    with StopRequests() as stop, (run_dir / "metrics.jsonl").open("a") as metrics_file, \
            ScalarLog(run_dir, first_epoch=len(progress.history) + 1) as scalars:
        def between_calls(carry: Carry, progress: Progress) -> None:
            nonlocal last_save
            if stop.requested or time.perf_counter() - last_save > recipe.train.checkpoint_seconds:
                save_resumable(checkpoints, member(carry), progress.snapshot())
                last_save = time.perf_counter()
                if stop.requested:
                    raise interrupted(stop, run_dir, recipe.name, progress, recipe.train.epochs)

        def on_epoch(_: int, record: dict[str, Any], carry: Carry) -> None:
            metrics_file.write(json_line(record))
            metrics_file.flush()
            scalars.write(record)
            if setup.per_epoch_figures:
                write_epoch_figures(run_dir, setup, member(carry).state, record["epoch"])

        try:
            carry = engine.run(carry, progress, reporter, between_calls, on_epoch)
        except Diverged as error:
            good = member(error.carry)  # the engine left the member at its state before the bad row
            save_resumable(checkpoints, good, progress.snapshot())
            summary = finish(run_dir, setup, good, progress, "diverged", time.perf_counter() - started,
                             engine, diverged_at=error.where)
            raise diverged_error(error, progress, summary["best_epoch"], run_dir,
                                 recipe.optimizer.learning_rate) from None
        finally:
            reporter.close()
        final = member(carry)
        if setup.data.feed is not None:  # a process's share of the training rows: its peak is the final report's
            setup.data.feed.release()
        judged = judge_best(run_dir, setup, final, progress, engine)  # its figures are drawn while we go on
        save_resumable(checkpoints, final, progress.snapshot())
    ended = "early_stopped" if len(progress.history) < recipe.train.epochs else "completed"
    last_is_best = int(final.stop.best_epoch) == len(progress.history)  # the best weights are the last ones
    summary = finish(run_dir, setup, final, progress, ended, time.perf_counter() - started, engine, judged,
                     end_of_training=fit_report(setup, engine.predictor, final.state, judged if last_is_best else None))
    write_task_figures(run_dir / "plots", setup, final.state, final.best)  # autoencoders and GANs: what they learned
    return RunResult(run_dir, summary, progress.history)


def member(carry: Carry, m: int = 0) -> Carry:
    """Member ``m`` of a stacked carry (host copies: the device arrays are donated to the next call)."""
    return jax.tree.map(lambda leaf: leaf[m], jax.device_get(carry))


def diverged_error(error: Diverged, good: Progress, best_epoch: int, run_dir: Path, learning_rate: float) -> DlcliError:
    return DlcliError(f"Training diverged: {error}. The run stopped; the last good checkpoint ({good.position}) and "
                      f"the best weights (epoch {best_epoch}) are kept in {run_dir}, and summary.json says "
                      f"\"ended\": \"diverged\". Lower optimizer.learning_rate (now {learning_rate:g}), or set "
                      "optimizer.clip_global_norm = 1.0.")


def interrupted(stop: StopRequests, run_dir: Path, name: str, progress: Progress, epochs: int) -> Interrupted:
    """Record the interruption in summary.json and build the exception that says how to resume."""
    write_json(run_dir / "summary.json", {"recipe": name, "ended": "interrupted", "signal": stop.name,
                                          "epochs_run": len(progress.history), "epoch": progress.epoch,
                                          "chunk": progress.chunk, "resume": f"dlcli train --resume {run_dir}"})
    return Interrupted(stop.signum, f"interrupted by {stop.name} at {progress.position} of {epochs}; the state is "
                                    f"saved in {run_dir / 'checkpoints'}. Resume with: dlcli train --resume {run_dir}")


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"
