"""The ``dlcli`` command line: parse options, call one library function, map errors.

Nothing here imports jax at module level, so ``dlcli --help`` answers at once.
User mistakes (:class:`dlcli.errors.DlcliError`) print one paragraph and
exit with code 2; anything else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from dlcli.errors import DlcliError
from dlcli.no_pandas import arrow_without_pandas  # imports nothing itself

app = typer.Typer(
    help="Train, evaluate and compare neural networks from declarative TOML recipes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SetOption = Annotated[list[str], typer.Option("--set", help="Override a recipe key: --set optimizer.learning_rate=0.01 "
                                                            "(value parsed as TOML). Repeatable.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON result on stdout; logs go to stderr.")]


@app.callback()
def options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show on stderr what the libraries underneath "
                                          "(jax, orbax, absl, Gloo) log; by default it goes to libraries.log in "
                                          "the run directory.")] = False,
) -> None:
    """Train, evaluate and compare neural networks from declarative TOML recipes."""
    from dlcli.quiet import route

    route(verbose)


def user_errors(command):
    """Turn a DlcliError into its message on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DlcliError as error:
            typer.echo(f"error: {error}" if error.exit_code == 2 else str(error), err=True)
            raise typer.Exit(code=error.exit_code) from None  # 2; 130/143 for an interrupted training
        except KeyboardInterrupt:
            typer.echo("interrupted (outside the training loop, where Ctrl-C saves a checkpoint first).", err=True)
            raise typer.Exit(code=130) from None

    return wrapper


def emit_json(data: dict) -> None:
    from dlcli.checkpoint import json_text

    typer.echo(json_text(data))


@app.command()
@user_errors
def train(
    recipe: Annotated[Optional[str], typer.Argument(help="A recipe .toml file or a bundled recipe name (see "
                                                         "`dlcli recipes`); omitted with --resume.")] = None,
    set_: SetOption = [],
    out: Annotated[Path, typer.Option("--out", help="Folder for run directories.")] = Path("runs"),
    seed: Annotated[Optional[int], typer.Option(help="Override the recipe's seed.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue an interrupted run from its last "
                                                   "checkpoint, in its own directory, with its own recipe.toml.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved recipe and where each value "
                                                              "came from, then stop.")] = False,
    json_: JsonOption = False,
) -> None:
    """Train a recipe and write a run directory (recipe, metrics, checkpoints, plots).

    Ctrl-C or SIGTERM saves a checkpoint and exits (130 / 143); `dlcli train --resume RUN_DIR` continues it.
    """
    from dlcli.recipe import load_recipe

    if resume is not None:
        if recipe is not None or set_ or seed is not None or dry_run:
            raise DlcliError("--resume continues a run with the recipe saved in its directory, so RECIPE, --set, "
                             "--seed and --dry-run cannot be combined with it. Give only: dlcli train --resume RUN_DIR.")
        arrow_without_pandas()
        from dlcli.report.console import make_reporter
        from dlcli.train.loop import resume as resume_run

        return show_result(resume_run(resume, make_reporter(json_mode=json_)), json_)
    if recipe is None:
        raise DlcliError("Give a RECIPE (a .toml file or a bundled name; `dlcli recipes` lists them), or "
                         "--resume RUN_DIR to continue an interrupted run.")
    loaded = load_recipe(recipe, set_, seed)
    if dry_run:
        from dlcli.report.tables import print_resolved

        print_resolved(loaded)
        return
    if not os.environ.get("DLCLI_COORDINATOR"):  # one process: it draws the figures (train() ends the drawer
        from dlcli.report import figure_process  # should the data or the model hold a mistake)

        figure_process.start()  # matplotlib loads on another core while jax loads here
    arrow_without_pandas()  # before anything imports pyarrow's dataset module, which would load pandas
    ahead = None
    if not os.environ.get("DLCLI_COORDINATOR"):  # the data are read on another thread while jax loads here
        from dlcli.read_ahead import ReadAhead

        ahead = ReadAhead(loaded)
    from dlcli.report.console import make_reporter
    from dlcli.train.loop import train as train_recipe

    show_result(train_recipe(loaded, out, make_reporter(json_mode=json_), ahead), json_)


def show_result(result, json_: bool) -> None:
    if json_:
        emit_json({"run_dir": str(result.run_dir), **result.summary})
    else:
        from dlcli.report.tables import print_final

        print_final(result.run_dir, result.summary)


@app.command()
@user_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `dlcli train`.")],
    split: Annotated[Optional[str], typer.Option(help="Which split of the run's data: test, val or train "
                                                     "(default: the one training was judged on, test if the "
                                                     "run has one, else val, else train).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Evaluate on this CSV/Parquet/NPZ file (or folder of parts, "
                                                      "or glob) instead, with the run's saved preprocessing.")] = None,
    json_: JsonOption = False,
) -> None:
    """Loss, accuracy, ROC AUC, confusion matrix, per-class scores (or MSE/MAE/R²) of a trained run."""
    if split is not None and split not in ("test", "val", "train"):
        raise DlcliError(f"--split '{split}': choose test, val or train.")
    if split is not None and data is not None:
        raise DlcliError("--split and --data both say what to evaluate on; give one of them.")

    arrow_without_pandas()
    from dlcli.runs import evaluate_run

    report = evaluate_run(run_dir, split, data)
    if json_:
        emit_json(report)
    else:
        from dlcli.report.tables import print_evaluation

        print_evaluation(report)


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `dlcli train`.")],
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV, Parquet or NPZ file of inputs, a folder "
                                                                              "of parts or a glob.")],
    out: Annotated[Optional[Path], typer.Option(help="Write predictions to this .csv or .parquet file "
                                                     "(default: CSV on stdout).")] = None,
) -> None:
    """Predict classes and probabilities (or values) for new inputs."""

    arrow_without_pandas()
    from dlcli.runs import predict_file, write_predictions

    text = write_predictions(predict_file(run_dir, input_file), out)
    if text is not None:
        sys.stdout.write(text)
    else:
        typer.echo(f"predictions written to {out}", err=True)


@app.command()
@user_errors
def recipes(name: Annotated[Optional[str], typer.Argument(help="Print this bundled recipe.")] = None) -> None:
    """List the bundled recipes, or print one (ready to copy and edit)."""
    from dlcli.recipe_files import bundled_dir, bundled_names, find_recipe

    if name is not None:
        path, _ = find_recipe(name)
        sys.stdout.write(path.read_text())
        return
    from dlcli.report.tables import print_recipe_list

    print_recipe_list([bundled_dir() / f"{n}.toml" for n in bundled_names()])


@app.command()
@user_errors
def summary(
    recipe: Annotated[str, typer.Argument(help="A recipe .toml file or a bundled recipe name.")],
    set_: SetOption = [],
) -> None:
    """Layers, output shapes and parameter counts of a recipe's model."""
    from dlcli.recipe import load_recipe
    from dlcli.report.tables import print_summary
    from dlcli.summary import summarize

    loaded = load_recipe(recipe, set_)
    arrow_without_pandas()
    print_summary(loaded.recipe.name, *summarize(loaded))


@app.command("compare-activations")
@user_errors
def compare_activations(
    recipe: Annotated[Optional[str], typer.Argument(help="A classification/regression recipe (.toml or bundled "
                                                         "name); default: the bundled compare-deep-mlp.")] = None,
    activations: Annotated[Optional[str], typer.Option(
        help="Comma-separated hidden activations, settings in parentheses, e.g. relu,leaky_relu(negative_slope=0.1),"
             "maxout(pieces=3). Default: the lecture's six, sigmoid,tanh,relu,leaky_relu,elu,maxout.")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per activation (the recipe's seed and the next ones); the "
                                            "same seeds, data split and batch order for every activation.")] = 5,
    set_: SetOption = [],
    out: Annotated[Path, typer.Option("--out", help="Folder for the comparison directory.")] = Path("runs"),
    json_: JsonOption = False,
) -> None:
    """Compare hidden activations on one recipe, paired over seeds: losses, gradient flow, dead units, verdict."""
    from dlcli.compare.activations import DEFAULT_ACTIVATIONS, DEFAULT_RECIPE, parse_activations
    from dlcli.compare.activations import compare_activations as run_comparison
    from dlcli.recipe import load_recipe

    if seeds < 1:
        raise DlcliError(f"--seeds {seeds}: give at least 1 seed (5 is a good start).")
    specs = parse_activations(activations or DEFAULT_ACTIVATIONS)
    loaded = load_recipe(recipe or DEFAULT_RECIPE, set_)
    arrow_without_pandas()
    from dlcli.report.console import make_reporter

    result = run_comparison(loaded, specs, [loaded.recipe.seed + i for i in range(seeds)], out,
                            make_reporter(json_mode=json_))
    show_comparison(result, json_, activations=True)


@app.command()
@user_errors
def compare(
    recipe: Annotated[str, typer.Argument(help="A recipe .toml file or bundled name; an experiment recipe "
                                               "(`dlcli recipes`) brings its own [compare] grid.")],
    vary: Annotated[list[str], typer.Option("--vary", help="KEY=V1,V2,...: values of any recipe key, parsed as "
                                                          "TOML. Repeat for a grid over several keys.")] = [],
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per variant (the recipe's seed and the next ones), "
                                                      "shared by every variant. Default: the recipe's [compare] "
                                                      "seeds, else 3.")] = None,
    set_: SetOption = [],
    out: Annotated[Path, typer.Option("--out", help="Folder for the comparison directory.")] = Path("runs"),
    yes: Annotated[bool, typer.Option("--yes", help="Run a grid of more than 1,000 runs.")] = False,
    json_: JsonOption = False,
) -> None:
    """Compare variants of a recipe over any keys, paired over seeds: curves, mean ± std, verdict."""
    from dlcli.compare.grid import make_variants, parse_vary
    from dlcli.recipe import load_recipe

    if seeds is not None and seeds < 1:
        raise DlcliError(f"--seeds {seeds}: give at least 1 seed (3 to 5 tell a real difference from noise).")
    loaded = load_recipe(recipe, set_)
    declared = loaded.recipe.compare
    grid = parse_vary(vary) if vary else dict(declared.vary) if declared else {}
    count = seeds or (declared.seeds if declared else 3)
    seed_list = [loaded.recipe.seed + i for i in range(count)]
    arrow_without_pandas()
    from dlcli.report.console import make_reporter

    reporter = make_reporter(json_mode=json_)
    if list(grid) == ["model.activation"]:  # the activation comparison, with its gradient and unit diagnostics
        from dlcli.compare.activations import compare_activations as run_activations

        result = run_activations(loaded, grid["model.activation"], seed_list, out, reporter)
        return show_comparison(result, json_, activations=True)
    from dlcli.compare.experiment import compare as run_grid

    named = declared.variants if declared and not vary else []
    result = run_grid(make_variants(recipe, grid, set_, count, yes, named), loaded, seed_list, out, reporter)
    show_comparison(result, json_, activations=False)


@app.command()
@user_errors
def tune(
    recipe: Annotated[Optional[str], typer.Argument(help="A recipe .toml file or bundled name with a [tune] table "
                                                         "(e.g. digits-mlp-tune); omitted with --resume.")] = None,
    trials: Annotated[Optional[int], typer.Option(help="Trials the study runs in all (counting those a resumed "
                                                       "study already ran). Default: the recipe's [tune] trials.")] = None,
    parallel: Annotated[int, typer.Option(help="Trials proposed at a time; those that share a program train as "
                                               "one vmapped stack.")] = 4,
    timeout: Annotated[Optional[float], typer.Option(help="Start no new batch of trials after this many "
                                                          "seconds.")] = None,
    set_: SetOption = [],
    out: Annotated[Path, typer.Option("--out", help="Folder for the tune folder.")] = Path("runs"),
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the study in this tune folder, "
                                                   "with its own recipe.toml.")] = None,
    json_: JsonOption = False,
) -> None:
    """Search the space a recipe's tune table declares, with Optuna: trials in vmapped batches, pruned per epoch,
    best recipe written.

    Ctrl-C keeps every finished trial (exit 130); `dlcli tune --resume TUNE_DIR` continues the study.
    """
    if trials is not None and trials < 1:
        raise DlcliError(f"--trials {trials}: give at least 1 trial (20 to 50 is a useful search).")
    if parallel < 1:
        raise DlcliError(f"--parallel {parallel}: give at least 1 (trials proposed and trained at a time).")
    if timeout is not None and timeout <= 0:
        raise DlcliError(f"--timeout {timeout}: give a positive number of seconds.")
    if resume is not None and (recipe is not None or set_):
        raise DlcliError("--resume continues a study with the recipe saved in its folder, so RECIPE and --set "
                         "cannot be combined with it. Give: dlcli tune --resume TUNE_DIR [--trials N].")
    arrow_without_pandas()
    from dlcli.report.console import make_reporter
    from dlcli.tune.report import print_tune, trial_line
    from dlcli.tune.study import tune as run_study

    reporter = make_reporter(json_mode=json_)
    result = run_study(recipe, set_, out, resume, trials, parallel, timeout, reporter,
                       lambda row: reporter.note(trial_line(row)))
    if json_:
        emit_json({"tune_dir": str(result.tune_dir), **result.summary})
    else:
        print_tune(result.tune_dir, result.summary)


def show_comparison(result, json_: bool, activations: bool) -> None:
    if json_:
        emit_json({"run_dir": str(result.run_dir), **result.summary})
        return
    from dlcli.compare.table import print_comparison, print_variants

    (print_comparison if activations else print_variants)(result.run_dir, result.summary)


class RunsGroup(TyperGroup):
    """``dlcli runs [DIR]`` lists and ``dlcli runs compare RUN...`` compares: a first word that names no
    subcommand (a folder, an option, nothing) goes to ``list``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)


runs_app = typer.Typer(cls=RunsGroup, help="Look back over past runs: `dlcli runs [DIR]` lists them, "
                                           "`dlcli runs compare RUN RUN...` sets them side by side.")
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
@user_errors
def runs_list(
    folder: Annotated[Path, typer.Argument(metavar="[DIR]", help="Folder to search, at any depth.")] = Path("runs"),
    recipe: Annotated[Optional[str], typer.Option(help="Only runs of this recipe (a name, or a glob such as "
                                                       "'higgs*').")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the newest N.")] = None,
    json_: JsonOption = False,
) -> None:
    """List the runs and comparisons under DIR (default ./runs), newest first: how each ended, its result, time."""
    from dlcli.history import find_entries, select

    found = find_entries(folder)
    entries = select(found, recipe, limit)
    if json_:
        from dlcli.strict_json import json_text

        typer.echo(json_text({"folder": str(folder), "runs": [entry.as_json() for entry in entries]}))
    else:
        from dlcli.report.runs_table import print_entries

        print_entries(entries, folder, len(select(found, recipe, None)))


@runs_app.command("compare")
@user_errors
def runs_compare(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="Run directories or comparison folders, "
                                                                      "as `dlcli runs` lists them.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the figure here (a .png file or a folder); "
                                                "default: plots/runs-compare.png in the first run.")] = None,
    json_: JsonOption = False,
) -> None:
    """Overlay the runs' curves in one figure; print their results and the recipe keys that differ."""
    from dlcli.run_comparison import compare_runs

    comparison = compare_runs(runs, out)
    if json_:
        from dlcli.strict_json import json_text

        typer.echo(json_text(comparison.as_json()))
    else:
        from dlcli.report.runs_table import print_runs_comparison

        print_runs_comparison(comparison)


def main() -> None:
    from dlcli.quiet import capture_native_stdout

    capture_native_stdout()  # before any library loads: stdout is dlcli's alone
    try:
        app()
        code = 0
    except SystemExit as done:  # how Typer ends every command; a bug's traceback ends the usual way
        if done.code is not None and not isinstance(done.code, int):
            raise
        code = done.code or 0
    from dlcli.process_exit import exit_now

    exit_now(code)
