"""The search space of a recipe's ``[tune]`` table, each key checked against the recipe it tunes.

``space`` maps a dotted recipe key to a range (``{ low, high, log, step }``;
an int range when both bounds are ints) or a list of choices. A trial's
values become ``--set``-style overrides of the recipe, so a trial is a recipe
validated like any other. Choices that Optuna cannot store as they are (a
list such as ``model.hidden = [64]``) are stored as their TOML text.
"""

from __future__ import annotations

from typing import Any

from dlcli.errors import DlcliError
from dlcli.recipe import LoadedRecipe, TuneConfig, TuneRange, load_recipe, toml_value
from dlcli.train.early_stopping import EarlyStopping

SCALARS = (bool, int, float, str)


def stored(choice: Any) -> bool | int | float | str:
    """A choice as Optuna stores it: scalars as they are, anything else as its TOML text."""
    return choice if isinstance(choice, SCALARS) else toml_value(choice)


def trial_recipe(ref: str, overrides: list[str], values: dict[str, Any]) -> LoadedRecipe:
    """The recipe with a trial's values set; a value the recipe rejects is a mistake in ``[tune]``."""
    sets = [*overrides, *(f"{key}={toml_value(value)}" for key, value in values.items())]
    try:
        return load_recipe(ref, sets)
    except DlcliError as error:
        shown = ", ".join(f"{key} = {toml_value(value)}" for key, value in values.items())
        raise DlcliError(f"[tune] space: the recipe rejects {shown}: {error} Fix that key's range or choices "
                         "in the [tune] table.") from None


def check_space(ref: str, overrides: list[str], config: TuneConfig) -> None:
    """Every key of the space names a recipe key, and every bound and choice is a value it accepts."""
    for key, spec in config.space.items():
        samples = [spec.low, spec.high] if isinstance(spec, TuneRange) else spec
        for sample in samples:
            trial_recipe(ref, overrides, {key: sample})


def direction(config: TuneConfig) -> str:
    """``minimize`` or ``maximize``: ``mode = "auto"`` reads the monitor's name as early stopping does."""
    return "minimize" if EarlyStopping.resolve_mode(config.monitor, config.mode) == "min" else "maximize"


def suggest(trial, config: TuneConfig) -> dict[str, Any]:
    """A trial's value of every key, drawn by Optuna (``trial`` from ``study.ask()``)."""
    values: dict[str, Any] = {}
    for key, spec in config.space.items():
        if isinstance(spec, TuneRange) and spec.is_int:
            values[key] = trial.suggest_int(key, spec.low, spec.high, step=spec.step or 1, log=spec.log)
        elif isinstance(spec, TuneRange):
            values[key] = trial.suggest_float(key, float(spec.low), float(spec.high), step=spec.step, log=spec.log)
        else:
            encoded = [stored(choice) for choice in spec]
            values[key] = spec[encoded.index(trial.suggest_categorical(key, encoded))]
    return values


def values_of(params: dict[str, Any], config: TuneConfig) -> dict[str, Any]:
    """A stored trial's recipe values from its Optuna params (choices decoded from their stored form)."""
    values = {}
    for key, spec in config.space.items():
        if isinstance(spec, list):
            values[key] = spec[[stored(choice) for choice in spec].index(params[key])]
        else:
            values[key] = params[key]
    return values
