"""Running a bundled recipe in-process for the model-zoo tests."""

from __future__ import annotations

from pathlib import Path

from dlcli.recipe import load_recipe
from dlcli.report.console import make_reporter
from dlcli.train.loop import RunResult, train


def run_recipe(name: str, out: Path, *overrides: str) -> RunResult:
    """Train bundled recipe ``name`` with ``--set`` overrides, quietly, under ``out``."""
    return train(load_recipe(name, list(overrides)), out, make_reporter(quiet=True))
