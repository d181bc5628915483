"""Rich tables for the commands' final output (plain text when piped)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rich.table import Table

from dlcli.report.console import make_console


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    return str(value)


def print_resolved(loaded) -> None:
    """Every recipe value with its origin: recipe file, --set, --seed or default."""
    from dlcli.recipe import flatten

    from dlcli.losses import LOSSES
    from dlcli.models import MODELS
    from dlcli.optim import OPTIMIZERS

    recipe = loaded.recipe
    values = flatten(recipe.model_dump())
    # The chosen components' own settings that the recipe leaves at their defaults
    # (load_recipe has already checked that every kind exists).
    sections = [("model", MODELS, recipe.model.kind), ("optimizer", OPTIMIZERS, recipe.optimizer.kind)]
    if recipe.loss is not None:
        sections.append(("loss", LOSSES, recipe.loss.kind))
    for section, registry, kind in sections:
        for key, default in registry.options(kind).items():
            values.setdefault(f"{section}.{key}", default)
    table = Table(title=f"{loaded.recipe.name} (from {loaded.source})")
    for column in ("key", "value", "origin"):
        table.add_column(column)
    for key in sorted(values):
        table.add_row(key, repr(values[key]), loaded.origins.get(key, "default"))
    make_console().print(table)


def print_final(run_dir: Path, summary: dict[str, Any]) -> None:
    final = summary["final"]
    scalars = {k: v for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    line = "  ".join(f"{k} {_fmt(v)}" for k, v in scalars.items())
    console = make_console()
    console.print(f"{summary['ended']} after {summary['epochs_run']} epochs (best epoch {summary['best_epoch']}); "
                  f"{summary['evaluated_on']}: {line}")
    console.print(f"run directory: {run_dir}")


def print_evaluation(report: dict[str, Any]) -> None:
    console = make_console()
    table = Table(title=f"{report['run']} on {report['data']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            table.add_row(key, _fmt(value))
    for efficiency, rejection in report.get("background_rejection", {}).items():
        table.add_row(f"background rejection @ signal eff. {efficiency}",
                      "unbounded (no background passes)" if rejection is None else _fmt(rejection))
    console.print(table)
    if "per_class" in report:
        classes = Table(title="per class")
        for column in ("class", "precision", "recall", "f1", "support"):
            classes.add_column(column, justify="right")
        for name, scores in report["per_class"].items():
            classes.add_row(name, *(_fmt(scores[k]) for k in ("precision", "recall", "f1", "support")))
        console.print(classes)
        names = list(report["per_class"])
        matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
        matrix.add_column("")
        for name in names:
            matrix.add_column(name, justify="right")
        for name, row in zip(names, report["confusion_matrix"]):
            matrix.add_row(name, *map(str, row))
        console.print(matrix)


def print_recipe_list(paths: list[Path]) -> None:
    table = Table(title="bundled recipes (dlcli recipes NAME prints one)")
    table.add_column("name")
    table.add_column("description")
    for path in paths:
        description = tomllib.loads(path.read_text()).get("description", "")
        table.add_row(path.stem, description)
    make_console().print(table)


def print_summary(name: str, rows, total: int, input_shape: list[int]) -> None:
    table = Table(title=f"{name}: input {('B', *input_shape)}")
    for column, justify in (("layer", "left"), ("output shape", "left"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(row.name, row.output_shape, f"{row.parameters:,}")
    table.add_section()
    table.add_row("total", "", f"{total:,}")
    make_console().print(table)
