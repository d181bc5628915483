"""dlcli tune: an Optuna study over a recipe's [tune] space, trials trained in vmapped batches."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlcli.cli import app

TINY = """
name = "tiny-tune"
seed = 0

[data]
source = "moons"
options = {{ samples = 300, noise = 0.2 }}
validation_split = 0.2
test_split = 0.2
standardize = true

[model]
kind = "mlp"
hidden = [8]

[optimizer]
kind = "{optimizer}"
learning_rate = 0.01

[train]
epochs = 3
batch_size = 32

[tune]
{tune}
"""
LEARNING_RATE = 'space = { "optimizer.learning_rate" = { low = 1e-3, high = 1e-1, log = true } }'


def write_recipe(tmp_path: Path, tune: str, optimizer: str = "adam") -> Path:
    path = tmp_path / "tiny-tune.toml"
    path.write_text(TINY.format(tune=tune, optimizer=optimizer))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, ["tune", *args])


def run_tune(*args: str) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def trial_rows(tune_dir: str) -> list[dict]:
    return [json.loads(line) for line in open(f"{tune_dir}/trials.jsonl")]


def test_a_study_writes_its_trials_and_a_best_recipe_that_trains_and_resumes_to_the_total(tmp_path):
    recipe = write_recipe(tmp_path, LEARNING_RATE)
    summary = run_tune(str(recipe), "--trials", "6", "--parallel", "3", "--out", str(tmp_path / "runs"))
    tune_dir = Path(summary["tune_dir"])
    assert (tune_dir / "study.db").is_file() and (tune_dir / "plots" / "objective.png").is_file()
    rows = trial_rows(tune_dir)
    assert [row["number"] for row in rows] == list(range(6)) and summary["trials"]["finished"] == 6
    assert all(row["shared_program"] for row in rows)
    # Three learning rates per batch differ only in Adam's state, and the second batch has the first's program
    # and size: one training program for the study, not one per batch or per trial.
    assert summary["compilations"]["train"] == 1
    complete = [row for row in rows if row["state"] == "complete"]
    best = min(complete, key=lambda row: row["value"])
    assert summary["best"]["number"] == best["number"]
    best_recipe = tomllib.loads((tune_dir / "best-recipe.toml").read_text())
    assert best_recipe["optimizer"]["learning_rate"] == best["values"]["optimizer.learning_rate"]
    assert "tune" not in best_recipe
    trained = CliRunner().invoke(app, ["train", str(tune_dir / "best-recipe.toml"), "--out", str(tmp_path / "runs"),
                                       "--json"])
    assert trained.exit_code == 0, trained.output

    resumed = run_tune("--resume", str(tune_dir), "--trials", "8", "--parallel", "3")
    assert resumed["tune_dir"] == str(tune_dir) and resumed["trials"]["finished"] == 8
    assert [row["number"] for row in trial_rows(tune_dir)] == list(range(8))


def test_diverging_trials_are_recorded_failed_and_the_study_completes(tmp_path):
    recipe = write_recipe(tmp_path, 'space = { "optimizer.learning_rate" = { low = 1e5, high = 1e6, log = true } }',
                          optimizer="sgd")
    # A batch of two (one vmapped stack) and a batch of one (a single run): both ways of diverging.
    summary = run_tune(str(recipe), "--trials", "3", "--parallel", "2", "--out", str(tmp_path))
    assert summary["trials"] == {"finished": 3, "complete": 0, "pruned": 0, "fail": 3}
    assert [row["ended"] for row in trial_rows(summary["tune_dir"])] == ["diverged"] * 3
    assert summary["best"] is None and not (Path(summary["tune_dir"]) / "best-recipe.toml").exists()


@pytest.mark.parametrize("tune, named", [
    ('space = { "optimizer.learning_rat" = { low = 1e-3, high = 1e-1 } }', "optimizer.learning_rat"),
    ('space = { "train.l2" = { low = 1e-3, high = 1e-3 } }', "tune.space.train.l2"),
    ('space = { "train.l2" = { low = 1e-1, high = 1e-3 } }', "tune.space.train.l2"),
    ('space = { "train.l2" = { low = 0.0, high = 1e-3, log = true } }', "tune.space.train.l2"),
    ('space = { "model.hidden" = [] }', "tune.space.model.hidden"),
    ('space = { "train.epochs" = [2, "three"] }', "train.epochs"),
    (LEARNING_RATE + '\nmonitor = "val_mse"', "tune.monitor"),
    ('space = {}', "tune.space"),
])
def test_a_bad_tune_table_exits_2_naming_the_key(tmp_path, tune, named):
    result = invoke(str(write_recipe(tmp_path, tune)), "--trials", "1", "--out", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output
    assert not (tmp_path / "tune").exists()  # checked before the study's folder exists


def test_a_recipe_without_a_tune_table_exits_2(tmp_path):
    result = invoke("moons-mlp", "--out", str(tmp_path))
    assert result.exit_code == 2 and "[tune]" in result.output
