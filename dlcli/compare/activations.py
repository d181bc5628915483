"""``dlcli compare-activations``: one recipe, several hidden activations, several seeds.

It is ``dlcli compare --vary model.activation=...`` (one code path,
:mod:`dlcli.compare.experiment`) plus the diagnostics of
:mod:`dlcli.compare.diagnostics`: gradient flow and unit health. The
comparison is paired: the recipe's seed fixes one data split for every run,
and seed ``s`` gives the same initial weights (where shapes agree) and the
same batch order to every activation, so differences come from the
activation alone. Element-wise activations and all their seeds train as one
vmapped program (the activation an index per member); maxout, whose layers
are wider, is a program of its own.

The output directory is a ``dlcli compare`` directory (``metrics.jsonl``
lines tagged by variant, here the activation's label) whose
``summary.json`` also lists the rows as ``activations`` with their
diagnostics, and whose ``plots/`` add gradient norms and unit health.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from dlcli.activations import ACTIVATIONS, ActivationSpec, check_activation, get_activation, split_spec
from dlcli.compare.experiment import Comparison
from dlcli.compare.grid import Variant
from dlcli.errors import DlcliError, choices_text
from dlcli.recipe import Component, LoadedRecipe, Recipe

DEFAULT_RECIPE = "compare-deep-mlp"
DEFAULT_ACTIVATIONS = "sigmoid,tanh,relu,leaky_relu,elu,maxout"  # the lecture's six


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


def compare_activations(loaded: LoadedRecipe, activations: list[ActivationSpec], seeds: list[int], out: Path,
                        reporter) -> Comparison:
    """``dlcli compare --vary model.activation=...`` with gradient-flow and unit diagnostics.

    Args:
      loaded: the validated recipe; its hidden activation is replaced by each of ``activations``.
      activations: specs as a recipe writes them (see :func:`parse_activations`).
      seeds: initialisation and shuffling seeds, shared by every activation.
      out: the folder under which ``compare/<recipe name>/<timestamp>/`` is created.
      reporter: progress display (see :mod:`dlcli.report.console`).
    """
    from dlcli.compare.experiment import compare

    check_model(loaded.recipe, loaded.source)
    if not seeds:
        raise DlcliError("--seeds must be at least 1.")
    for spec in activations:
        check_activation(spec, where="model.activation")
    variants = [Variant(activation_label(spec), {"model.activation": spec},
                        loaded.model_copy(update={"recipe": with_activation(loaded.recipe, spec)}))
                for spec in activations]
    return compare(variants, loaded, seeds, out, reporter, diagnose=True)
