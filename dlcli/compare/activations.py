"""``dlcli compare-activations``: one recipe, several hidden activations, several seeds.

The comparison is paired: the recipe's seed fixes one data split for every
run, and seed ``s`` gives the same initial weights (where shapes agree) and
the same batch order to every activation, so differences come from the
activation alone. The seeds of one activation train together as one
compiled program (:mod:`dlcli.engine.stack`); gradient flow and unit health
come from :mod:`dlcli.compare.diagnostics`.

The output directory holds ``recipe.toml``, ``preprocessing.json``,
``metrics.jsonl`` (one line per activation, seed and epoch, tagged with
both), ``summary.json`` (every run's final numbers, the per-activation
means and the verdict) and ``plots/``; plots and tables are drawn from
those files, so a comparison can be re-read without retraining.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcli.activations import ACTIVATIONS, ActivationSpec, get_activation, split_spec
from dlcli.errors import DlcliError, choices_text
from dlcli.recipe import Component, LoadedRecipe, Recipe
from dlcli.report.tensorboard import ScalarLogs

DEFAULT_RECIPE = "compare-deep-mlp"
DEFAULT_ACTIVATIONS = "sigmoid,tanh,relu,leaky_relu,elu,maxout"  # the lecture's six


@dataclass
class Comparison:
    run_dir: Path
    summary: dict[str, Any]


def parse_activations(text: str) -> list[ActivationSpec]:
    """``"relu,leaky_relu(negative_slope=0.1),maxout(pieces=3)"`` -> activation specs, validated.

    Settings in parentheses are ``key=value`` pairs with TOML values; an unknown
    name or setting is the user's mistake and lists the valid ones.
    """
    specs: list[ActivationSpec] = []
    for item in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
        item = item.strip()
        match = re.fullmatch(r"(\w+)\s*(?:\((.*)\))?", item)
        if not match:
            raise DlcliError(f"--activations: cannot read '{item}'. Write names separated by commas, with settings "
                             "in parentheses: relu,leaky_relu(negative_slope=0.1),maxout(pieces=3).")
        name, inner = match.groups()
        settings = {}
        for pair in filter(None, (p.strip() for p in (inner or "").split(","))):
            key, sep, raw = pair.partition("=")
            if not sep:
                raise DlcliError(f"--activations: '{pair}' in '{item}' is not key=value, e.g. negative_slope=0.1.")
            try:
                settings[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                settings[key.strip()] = raw.strip()
        spec: ActivationSpec = {"kind": name, **settings} if settings else name
        get_activation(spec, where="--activations")  # unknown names and settings fail here, with the valid list
        specs.append(spec)
    if not specs:
        raise DlcliError(f"--activations is empty. Valid activations: {choices_text(ACTIVATIONS.names())}.")
    labels = [activation_label(s) for s in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise DlcliError(f"--activations lists {', '.join(repeated)} more than once; list each activation once.")
    return specs


def activation_label(spec: ActivationSpec) -> str:
    name, settings = split_spec(spec)
    return name + (f"({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else "")


def with_activation(recipe: Recipe, spec: ActivationSpec) -> Recipe:
    model = Component.model_validate({**recipe.model.model_dump(), "activation": spec})
    return recipe.model_copy(update={"model": model})


def check_model(recipe: Recipe, source: str) -> None:
    from dlcli.models import MODELS

    if "activation" not in MODELS.options(recipe.model.kind):
        raise DlcliError(f"{source}: model.kind = '{recipe.model.kind}' has no hidden activation to compare. "
                         "Use a model with an `activation` setting, e.g. kind = \"mlp\".")


def check_builds(recipe: Recipe, setup) -> None:
    """Build ``recipe``'s model abstractly (shapes only, nothing computed): raises its DlcliError, if any."""
    from flax import nnx

    from dlcli.models import build_model

    pre, task = setup.data.preprocessing, setup.built.task
    nnx.eval_shape(lambda: build_model(recipe.model.kind, recipe.model.settings(), tuple(pre.input_shape),
                                       task.output_dim, recipe.seed))


def unused_settings(loaded: LoadedRecipe) -> list[str]:
    """Notes for the recipe keys a comparison does not use, when the recipe or --set gave them."""
    notes = []
    if "train.checkpoint_seconds" in loaded.origins:
        notes.append("train.checkpoint_seconds is not used: compare-activations keeps no checkpoints (its runs are "
                     "re-readable from metrics.jsonl and summary.json).")
    return notes


def start_directory(out: Path, loaded: LoadedRecipe, setup) -> Path:
    """A new ``out/compare/<recipe>/<timestamp>/`` with the recipe and the preprocessing all runs share."""
    from dlcli.checkpoint import create_run_dir, write_text
    from dlcli.quiet import log_into
    from dlcli.recipe import to_toml

    run_dir = create_run_dir(out / "compare", loaded.recipe.name)
    log_into(run_dir)
    write_text(run_dir / "recipe.toml", f"# resolved from {loaded.source}; compare-activations replaces "
                                        "model.activation\n" + to_toml(loaded.recipe))
    setup.data.preprocessing.save(run_dir / "preprocessing.json")
    return run_dir


def compare_activations(loaded: LoadedRecipe, activations: list[ActivationSpec], seeds: list[int], out: Path,
                        reporter) -> Comparison:
    """Train the recipe once per activation and seed; write and return the comparison.

    Args:
      loaded: the validated recipe; its hidden activation is replaced by each of ``activations``.
      activations: specs as a recipe writes them (see :func:`parse_activations`).
      seeds: initialisation and shuffling seeds, shared by every activation.
      out: the folder under which ``compare/<recipe name>/<timestamp>/`` is created.
      reporter: progress display (see :mod:`dlcli.report.console`).
    """
    from dlcli.checkpoint import write_json
    from dlcli.compare.family import family_key, group_families, run_activation
    from dlcli.compare.stats import summarize
    from dlcli.compare.plots import write_compare_plots
    from dlcli.train.setup import prepare

    recipe = loaded.recipe
    check_model(recipe, loaded.source)
    if not seeds:
        raise DlcliError("--seeds must be at least 1.")
    started = time.perf_counter()
    setup = prepare(loaded)  # the data split, optimizer, plan and checks every activation shares
    if not setup.built.task.supervised:
        raise DlcliError(f"{loaded.source}: compare-activations compares classification and regression recipes; "
                         f"this one is a {setup.built.task.kind} task.")
    for spec in activations:  # every activation must build with this model before any of them trains
        check_builds(with_activation(recipe, spec), setup)
    notes = unused_settings(loaded)
    for note in notes:
        reporter.note(note)
    run_dir = start_directory(out, loaded, setup)
    families = group_families(activations)
    runs = []
    with (run_dir / "metrics.jsonl").open("a") as metrics_file, ScalarLogs(run_dir / "tensorboard") as scalars:
        for spec in activations:
            label = activation_label(spec)

            def write(m: int, record: dict[str, Any], label=label) -> None:
                metrics_file.write(json.dumps({"activation": label, "seed": seeds[m], **record}) + "\n")
                metrics_file.flush()
                scalars.write(f"{label}/seed_{seeds[m]}", record)

            family = families[family_key(spec)]
            runs.append(run_activation(setup, with_activation(recipe, spec), seeds, label, reporter, write, family))
    summary = summarize(recipe, runs, seeds, time.perf_counter() - started)
    summary["notes"] = notes
    write_json(run_dir / "summary.json", summary)
    write_compare_plots(run_dir)
    return Comparison(run_dir, summary)
