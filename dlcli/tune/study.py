"""``dlcli tune``: an Optuna study over a recipe's ``[tune]`` space, its trials trained in vmapped batches.

Optuna proposes ``--parallel K`` trials at a time (TPE, seeded with the
recipe's seed). Each trial is a variant of the recipe; the trials of a batch
that share a program (they differ only in numbers the optimizer keeps in its
state) train as one vmapped stack, the others as programs of their own, as
``dlcli compare`` groups its variants. Every epoch each trial reports its
monitored value to the median pruner, and a pruned trial is frozen in the
stack (its batches weigh nothing) while the others train on, or leaves it
(see :mod:`dlcli.tune.trials`). A program, and the initial weights, of one
batch serve the later batches' groups of the same program.

The tune folder ``out/tune/<recipe>/<timestamp>/`` holds ``recipe.toml``,
``study.db`` (Optuna's SQLite storage, written after each batch and on
Ctrl-C: ``--resume`` continues from it; see :mod:`dlcli.tune.storage`),
``trials.jsonl`` (one line per finished trial), ``metrics.jsonl`` (every
trial's epochs), ``summary.json``, ``best-recipe.toml`` and ``plots/``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.compare.experiment import data_key, prepare_groups
from dlcli.compare.grid import Variant
from dlcli.errors import DlcliError
from dlcli.recipe import LoadedRecipe, load_recipe, to_toml
from dlcli.tune.space import check_space, direction, suggest, trial_recipe, values_of
from dlcli.tune.storage import STUDY_FILE, StoredStudy, close_abandoned, import_optuna
from dlcli.tune.trials import Kept, train_trials, trial_groups


class Interrupted(DlcliError):
    exit_code = 130


@dataclass
class TuneResult:
    tune_dir: Path
    summary: dict[str, Any]


@dataclass
class Session:
    """A study's folder and the recipe its trials vary (``ref`` plus ``overrides``)."""

    tune_dir: Path
    ref: str
    overrides: list[str]
    base: LoadedRecipe
    data_by_config: dict[str, Any] = field(default_factory=dict)  # loaded once for every batch
    kept: Kept = field(default_factory=Kept)  # programs and initial models, for later batches

    @property
    def config(self):
        return self.base.recipe.tune


def tune(ref: str | None, overrides: list[str], out: Path, resume: Path | None, trials: int | None, parallel: int,
         timeout: float | None, reporter, on_trial=lambda row: None) -> TuneResult:
    """Run (or continue) a study until ``trials`` trials finished or ``timeout`` seconds passed.

    Args:
      ref: a recipe file or bundled name with a ``[tune]`` table (None with ``resume``).
      overrides: ``--set`` strings applied to every trial.
      out: the folder under which ``tune/<recipe name>/<timestamp>/`` is created.
      resume: a tune folder to continue, with its own ``recipe.toml`` and ``study.db``.
      trials: the study's total of finished trials (default: the recipe's ``[tune] trials``).
      parallel: trials Optuna proposes at a time, trained together where their programs agree.
      timeout: no new batch starts after this many seconds.
      reporter: progress display (see :mod:`dlcli.report.console`).
      on_trial: called with each finished trial's row (the live table).
    """
    optuna = import_optuna()
    session = open_session(resume) if resume is not None else new_session(ref, overrides, out)
    stored = StoredStudy.open(session.tune_dir, direction(session.config),
                              sampler=optuna.samplers.TPESampler(seed=session.base.recipe.seed),
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
    from dlcli.report import figure_process

    figure_process.start(preload=("optuna.importance",))  # matplotlib and Optuna's analysis (1.3 s, it
    # imports scikit-learn's forests) load on another core while the trials train
    try:
        summary = run_study(stored, session, trials or session.config.trials, parallel, timeout, reporter, on_trial)
    finally:
        figure_process.stop()  # unused when the study failed before its figures
        stored.close()  # the study file and trials.jsonl complete
    return TuneResult(session.tune_dir, summary)


def run_study(stored: StoredStudy, session: Session, total: int, parallel: int, timeout: float | None, reporter,
              on_trial) -> dict[str, Any]:
    """Batches of trials until ``total`` finished (or ``timeout``); the summary. Ctrl-C saves and stops."""
    from dlcli.engine.compilation import Compilations

    study = stored.study
    started, counted = time.perf_counter(), Compilations.start()
    while (done := len(finished(study))) < total and not (timeout and time.perf_counter() - started >= timeout):
        batch = [study.ask() for _ in range(min(parallel, total - done))]
        try:
            run_batch(stored, batch, session, reporter, on_trial)
            stored.save()
        except KeyboardInterrupt:
            close_abandoned(study, {trial.number for trial in batch})
            stored.save()
            write_outputs(study, session, time.perf_counter() - started, counted.since())
            raise Interrupted(f"interrupted: {len(finished(study))} finished trials are kept in "
                              f"{session.tune_dir / STUDY_FILE}. Continue with: dlcli tune --resume "
                              f"{session.tune_dir} --trials {total}") from None
    return write_outputs(study, session, time.perf_counter() - started, counted.since())


def new_session(ref: str | None, overrides: list[str], out: Path) -> Session:
    """Check the recipe and its space, then create the tune folder with the resolved recipe."""
    from dlcli.checkpoint import create_run_dir, write_text

    if ref is None:
        raise DlcliError("Give a RECIPE with a [tune] table (`dlcli recipes digits-mlp-tune` shows one), or "
                         "--resume TUNE_DIR to continue a study.")
    base = load_recipe(ref, overrides)
    if base.recipe.tune is None:
        raise DlcliError(f"{base.source}: the recipe has no [tune] table, so there is nothing to search. Add one, "
                         'e.g. [tune] space = { "optimizer.learning_rate" = { low = 1e-4, high = 1e-1, log = true } }.')
    check_space(ref, overrides, base.recipe.tune)
    data = check_monitor(base)
    tune_dir = create_run_dir(out / "tune", base.recipe.name)
    write_text(tune_dir / "recipe.toml", f"# resolved from {base.source}; dlcli tune --resume {tune_dir}\n"
                                         + to_toml(base.recipe))
    return Session(tune_dir, ref, list(overrides), base, {data_key(base.recipe): data})


def check_monitor(base: LoadedRecipe):
    """``[tune] monitor`` must be in every epoch record, or no trial would have a value; returns the data."""
    from dlcli.train.setup import check_monitor as check_tracked
    from dlcli.train.setup import prepare, train_metrics_of

    setup = prepare(base)
    check_tracked(base.recipe.tune.monitor, "val" in setup.data.splits, setup.wanted, train_metrics_of(setup.wanted),
                  key=f"{base.source}: tune.monitor")
    return setup.data


def open_session(tune_dir: Path) -> Session:
    for name in ("recipe.toml", STUDY_FILE):
        if not (tune_dir / name).is_file():
            raise DlcliError(f"--resume '{tune_dir}': not a dlcli tune folder ({name} is missing). Pass the folder "
                             "that `dlcli tune` printed (runs/tune/<recipe>/<timestamp>).")
    ref = str(tune_dir / "recipe.toml")
    return Session(tune_dir, ref, [], load_recipe(ref))


def finished(study) -> list:
    """Trials that ran to an outcome (complete, pruned or failed); interrupted ones are not counted."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                TrialState.FAIL)) if "epochs" in t.user_attrs]


def run_batch(stored: StoredStudy, batch: list, session: Session, reporter, on_trial) -> None:
    """Train one batch of asked trials, program group by program group, telling Optuna each outcome."""
    variants = []
    for trial in batch:
        values = suggest(trial, session.config)
        variants.append(Variant(f"trial {trial.number}", values, trial_recipe(session.ref, session.overrides, values)))
    groups = trial_groups(variants)
    fresh = [group for group in groups if group.key not in session.kept.setups]  # a program new to the study
    for group, setups in zip(fresh, prepare_groups(fresh, session.base, session.data_by_config)):
        session.kept.setups[group.key] = setups[0]
    by_label = {f"trial {trial.number}": trial for trial in batch}
    with (session.tune_dir / "metrics.jsonl").open("a") as metrics_file:
        def write(variant: Variant, seed: int, record: dict[str, Any]) -> None:
            metrics_file.write(json.dumps({"variant": variant.label, "seed": seed, **record}) + "\n")
            metrics_file.flush()

        for index, group in enumerate(groups):
            trials = [by_label[variant.label] for variant in group.variants]
            runs, pruned = train_trials(group, trials, session.kept, index, session.config.monitor, reporter, write)
            for m, run in enumerate(runs):
                on_trial(tell(stored, trials[m], run, m in pruned, session, len(group.variants) > 1))


def tell(stored: StoredStudy, trial, run: dict[str, Any], pruned: bool, session: Session, shared: bool
         ) -> dict[str, Any]:
    """Tell Optuna a trial's outcome; return its ``trials.jsonl`` row (written when the trial is saved)."""
    from optuna.trial import TrialState

    study = stored.study
    member = run["members"][0]
    monitor, minimize = session.config.monitor, study.direction.name == "MINIMIZE"
    seen = [r[monitor] for r in member["history"] if math.isfinite(r.get(monitor, math.nan))]
    value = (min(seen) if minimize else max(seen)) if seen else None
    trial.set_user_attr("epochs", len(member["history"]))  # the mark of a trial that ran to an outcome
    if member["ended"] == "diverged" or value is None:
        state = TrialState.FAIL
        study.tell(trial, state=state)
    elif pruned:
        state = TrialState.PRUNED
        study.tell(trial, state=state)
    else:
        state = TrialState.COMPLETE
        study.tell(trial, value)
    row = {"number": trial.number, "state": state.name.lower(), "value": value, "values": run["values"],
           "epochs": len(member["history"]), "ended": member["ended"], "shared_program": shared,
           "wall_time_s": run["wall_time_s"]}
    stored.keep(row)
    return row


def write_outputs(study, session: Session, wall: float, compilations: dict[str, int]) -> dict[str, Any]:
    """``summary.json``, ``best-recipe.toml`` and the plots, from the study as it stands."""
    from dlcli.checkpoint import write_json, write_text
    from dlcli.report import figure_process
    from dlcli.tune.report import figure_calls

    calls, plots = figure_calls(study, session.tune_dir / "plots", session.config)
    figure_process.send(calls)  # drawn while the files below are written
    config = session.config
    states = [trial.state.name.lower() for trial in finished(study)]
    counts = {"finished": len(states), **{state: states.count(state) for state in ("complete", "pruned", "fail")}}
    summary: dict[str, Any] = {
        "recipe": session.base.recipe.name, "monitor": config.monitor, "direction": study.direction.name.lower(),
        "space": list(config.space), "trials": counts, "best": None, "wall_time_s": wall,
        "compilations": compilations}
    if counts["complete"]:
        best = study.best_trial
        values = values_of(best.params, config)
        loaded = trial_recipe(session.ref, session.overrides, values)
        text = (f"# the best trial ({best.number}) of dlcli tune {session.tune_dir}: {config.monitor} = "
                f"{best.value:.6g}\n# dlcli train {session.tune_dir / 'best-recipe.toml'}\n")
        write_text(session.tune_dir / "best-recipe.toml", text + to_toml(loaded.recipe.model_copy(update={"tune": None})))
        summary["best"] = {"number": best.number, "value": best.value, "values": values,
                           "recipe": str(session.tune_dir / "best-recipe.toml")}
    summary["plots"] = plots
    write_json(session.tune_dir / "summary.json", summary)
    figure_process.wait()
    return summary
