"""Shared fixtures: a silent reporter, a trained run, and a HIGGS-shaped file."""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# One compilation cache for the whole session, fresh each session: a program
# compiled by one test is loaded by the next, as a user's second run would.
os.environ.setdefault("DLCLI_CACHE_DIR", tempfile.mkdtemp(prefix="dlcli-test-xla-"))

from dlcli.recipe import load_recipe  # noqa: E402
from dlcli.recipe_files import bundled_dir  # noqa: E402
from dlcli.report.console import PlainReporter, make_console  # noqa: E402
from dlcli.train.loop import RunResult, train  # noqa: E402


def quiet(stream: io.StringIO | None = None) -> PlainReporter:
    """A plain reporter writing to ``stream`` (by default, nowhere anyone reads)."""
    return PlainReporter(make_console(stream or io.StringIO()))


def train_recipe(ref: str, out: Path, *overrides: str, stream: io.StringIO | None = None) -> RunResult:
    """Train a recipe (a bundled name or a path) through the library, silently."""
    return train(load_recipe(ref, list(overrides)), out, quiet(stream))


def higgs_columns() -> list[str]:
    """The label and the 28 feature names, as the bundled higgs-mlp recipe lists them."""
    recipe = tomllib.loads((bundled_dir() / "higgs-mlp.toml").read_text())
    return recipe["data"]["column_names"]


def higgs_like(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 28) features and 0/1 labels with a learnable, partly non-linear signal."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 28)).astype(np.float32)
    x[:, 22:] = np.abs(x[:, 22:]) * 50 + 100  # the 7 invariant masses: positive, GeV-sized
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 5] + 0.8 * x[:, 9] * x[:, 13] + 0.03 * (x[:, 26] - 140)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return x, y


@pytest.fixture(scope="session")
def higgs_parquet(tmp_path_factory) -> Path:
    """A small Parquet file with HIGGS's layout: the label column, then 28 named features."""
    x, y = higgs_like(3000)
    names = higgs_columns()
    path = tmp_path_factory.mktemp("higgs") / "higgs.parquet"
    pq.write_table(pa.table({names[0]: y, **{name: x[:, i] for i, name in enumerate(names[1:])}}), path)
    return path


def write_points(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    path.write_text("x1,x2,label\n" + "".join(f"{a:.6f},{b:.6f},{c}\n" for (a, b), c in zip(x, y)))
    return path


@pytest.fixture(scope="session")
def binary_run(tmp_path_factory) -> RunResult:
    """A short run on two-moons CSV files whose raw scales make standardisation matter.

    The test points live in their own file (``data.test_path``), so ``evaluate
    --data`` on it must reproduce ``evaluate --split test`` exactly, which holds
    only if the saved preprocessing is applied.
    """
    from sklearn.datasets import make_moons

    folder = tmp_path_factory.mktemp("moons")
    x, y = make_moons(n_samples=1000, noise=0.2, random_state=3)
    x = x * [40.0, 0.02] + [150.0, -3.0]  # one wide feature far from 0, one tiny one
    write_points(folder / "train.csv", x[:800], y[:800])
    write_points(folder / "test.csv", x[800:], y[800:])
    recipe = folder / "moons.toml"
    recipe.write_text(MOONS_RECIPE)
    return train_recipe(str(recipe), folder / "runs")


MOONS_RECIPE = """
name = "moons-files"
seed = 0

[data]
source = "csv"
path = "train.csv"
test_path = "test.csv"
target = "label"
validation_split = 0.2
standardize = true

[model]
kind = "mlp"
hidden = [16, 16]

[optimizer]
learning_rate = 0.01

[train]
epochs = 8
batch_size = 32
"""


DLCLI_LINES = re.compile("|".join([
    r"training \S+: \d+ examples, \d+ steps/epoch, up to \d+ epochs -> .+",
    r"epoch \d+/\d+  .+",
    r"resuming .+ at epoch \d+.*",
    r"early stopping: .+",
    r"interrupted by SIG\w+ at .+",
    r"predictions written to .+",
    r"error: .+",
]))


def assert_only_dlcli_output(stdout: str, stderr: str) -> None:
    """stdout is exactly one JSON document and every stderr line is one dlcli writes (no library's)."""
    json.loads(stdout)  # raises on anything before or after the document
    strangers = [line for line in stderr.splitlines() if not DLCLI_LINES.fullmatch(line)]
    assert not strangers, f"lines dlcli did not write: {strangers}"
