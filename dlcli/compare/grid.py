"""The variants of a comparison: a grid over any recipe keys, each variant a validated recipe.

``--vary optimizer.learning_rate=1e-3,1e-2`` lists values as TOML, split on
the commas outside brackets and quotes (``--vary model.hidden=[64],[64,64]``);
several ``--vary`` options make their product. A recipe's ``[compare]``
table holds the same lists (``vary = { "train.batch_size" = [1, 32, "full"] }``).
Every variant is the recipe with ``--set``-style overrides, validated like one.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from typing import Any

from dlcli.errors import DlcliError
from dlcli.recipe import LoadedRecipe, load_recipe, toml_value

MAX_MEMBERS = 1000  # variants x seeds above which --yes is needed


@dataclass(frozen=True)
class Variant:
    label: str  # "optimizer.learning_rate=0.01"
    values: dict[str, Any]  # key -> value
    loaded: LoadedRecipe


def split_values(text: str) -> list[str]:
    """``"[64],[64, 64]"`` -> ``["[64]", "[64, 64]"]``: commas inside brackets, braces or quotes do not split."""
    parts, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return parts


def parse_value(text: str) -> Any:
    """A value as TOML, or the bare word as a string (``adam``), as ``--set`` reads it."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_vary(texts: list[str]) -> dict[str, list[Any]]:
    """``["KEY=V1,V2", ...]`` -> ``{KEY: [V1, V2]}``; a key given twice, or with no values, is a mistake."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip() or any(not part for part in key.split(".")):
            raise DlcliError(f"--vary '{text}': expected KEY=V1,V2,... with a dotted recipe key, e.g. "
                             "--vary optimizer.learning_rate=0.001,0.01,0.1.")
        if key in grid:
            raise DlcliError(f"--vary names '{key}' twice; list all its values in one --vary {key}=V1,V2,...")
        values = [parse_value(part) for part in split_values(raw) if part]
        if len(values) != len(set(map(toml_value, values))):
            raise DlcliError(f"--vary '{text}': a value is listed twice.")
        grid[key] = values
    return grid


def label_of(values: dict[str, Any]) -> str:
    return " ".join(f"{key}={toml_value(value)}" for key, value in values.items())


def named_sets(entries: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``[compare] variants``: (name, {dotted key: value}) per entry; the name defaults to its overrides."""
    sets = []
    for entry in entries:
        values = {k: v for k, v in entry.items() if k != "name"}
        name = entry.get("name") or label_of(values) or "recipe as written"
        if not isinstance(name, str):
            raise DlcliError(f"[compare] variants: name = {name!r} must be a string.")
        sets.append((name, values))
    return sets


def make_variants(ref: str, grid: dict[str, list[Any]], overrides: list[str], seeds: int, yes: bool,
                  named: list[dict[str, Any]] = ()) -> list[Variant]:
    """Every named set (or the recipe) times every combination of the grid, each a validated recipe.

    Refuses grids past :data:`MAX_MEMBERS` runs without ``yes``.
    """
    if not grid and not named:
        raise DlcliError("Nothing to compare: give --vary KEY=V1,V2,... (or a recipe whose [compare] table lists "
                         "vary = { KEY = [V1, V2] } or named variants).")
    combinations = list(itertools.product(*grid.values()))
    bases = named_sets(list(named)) or [("", {})]
    if len(bases) * len(combinations) * seeds > MAX_MEMBERS and not yes:
        raise DlcliError(f"This grid trains {len(bases) * len(combinations)} variants x {seeds} seeds = "
                         f"{len(bases) * len(combinations) * seeds} runs. Narrow --vary or --seeds, or pass --yes "
                         "to run them all.")
    variants = []
    for name, base in bases:
        for combination in combinations:
            values = {**base, **dict(zip(grid, combination))}
            label = " ".join(part for part in (name, label_of(dict(zip(grid, combination)))) if part)
            sets = [*overrides, *(f"{key}={toml_value(value)}" for key, value in values.items())]
            try:
                loaded = load_recipe(ref, sets)
            except DlcliError as error:
                raise DlcliError(f"compare variant '{label}': {error}") from None
            variants.append(Variant(label, values, loaded))
    return variants
