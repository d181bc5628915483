"""TensorBoard scalars: every run and comparison member writes its epochs, equal to metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.recipe import load_recipe
from dlcli.report.tensorboard import ScalarLog, scalar_tag
from dlcli.train.interrupt import Interrupted
from dlcli.train.loop import resume, train
from test_resume import Quiet
from tfevents import read_scalars

runner = CliRunner()


def metrics_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_scalars(history: list[dict]) -> dict[str, dict[int, float]]:
    """values[tag][epoch] as TensorBoard stores them (32-bit floats)."""
    expected: dict[str, dict[int, float]] = {}
    for record in history:
        for key, value in record.items():
            if key != "epoch" and isinstance(value, float):
                expected.setdefault(scalar_tag(key), {})[record["epoch"]] = float(np.float32(value))
    return expected


def test_a_run_writes_every_epoch_as_tensorboard_scalars(tmp_path):
    result = runner.invoke(app, ["train", "moons-mlp", "--set", "train.epochs=5", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1

    scalars = read_scalars(run_dir)

    history = metrics_lines(run_dir / "metrics.jsonl")
    assert scalars == expected_scalars(history)
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "learning_rate",
            "speed/samples_per_s"} <= set(scalars)
    assert sorted(scalars["loss/val"]) == [1, 2, 3, 4, 5]


def test_a_resumed_run_continues_its_scalars_without_repeating_an_epoch(tmp_path):
    settings = ["train.epochs=6"]
    with pytest.raises(Interrupted):  # stopped after its first epoch
        train(load_recipe("mlp-xor", settings), tmp_path, Quiet(signal_after=1))
    run_dir = next((tmp_path / "mlp-xor").iterdir())
    kept = len(metrics_lines(run_dir / "metrics.jsonl"))
    # A process killed after its last checkpoint leaves epochs in its event file that the resume trains again.
    with ScalarLog(run_dir, first_epoch=kept + 1) as killed:
        for epoch in range(kept + 1, kept + 3):
            killed.write({"epoch": epoch, "loss": 99.0})

    resume(run_dir, Quiet())

    history = metrics_lines(run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert read_scalars(run_dir)["loss/train"] == expected_scalars(history)["loss/train"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 3


def test_a_comparison_writes_one_tensorboard_run_per_activation_and_seed(tmp_path):
    result = runner.invoke(app, ["compare-activations", "mlp-xor", "--activations", "relu,leaky_relu(negative_slope=0.1)",
                                 "--seeds", "2", "--set", "train.epochs=3", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    records = metrics_lines(run_dir / "metrics.jsonl")

    for activation, folder in (("relu", "relu"), ("leaky_relu(negative_slope=0.1)", "leaky_relu(negative_slope=0.1)")):
        for seed in (0, 1):
            history = [r for r in records if r["variant"] == activation and r["seed"] == seed]
            assert len(history) == 3
            scalars = read_scalars(run_dir / "tensorboard" / folder / f"seed_{seed}")
            assert scalars == expected_scalars(history)
