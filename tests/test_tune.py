"""dlcli tune: an Optuna study over a recipe's [tune] space, trials trained in vmapped batches."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import quiet, train_recipe
from dlcli.cli import app
from dlcli.tune.study import Interrupted, tune

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
epochs = {epochs}
batch_size = 32

[tune]
{tune}
"""
LEARNING_RATE = 'space = { "optimizer.learning_rate" = { low = 1e-3, high = 1e-1, log = true } }'


def write_recipe(tmp_path: Path, tune: str, optimizer: str = "adam", epochs: int = 3) -> Path:
    path = tmp_path / "tiny-tune.toml"
    path.write_text(TINY.format(tune=tune, optimizer=optimizer, epochs=epochs))
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


def epochs_by_trial(tune_dir: Path) -> dict[str, list[int]]:
    epochs: dict[str, list[int]] = {}
    for line in (tune_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        epochs.setdefault(record["variant"], []).append(record["epoch"])
    return epochs


def test_ctrl_c_keeps_every_finished_trial_in_the_study_file_and_resume_finishes(tmp_path):
    recipe = write_recipe(tmp_path, LEARNING_RATE)
    told = []

    def interrupt_after_four(row: dict) -> None:  # Ctrl-C in the second batch, after its first trial finished
        told.append(row["number"])
        if len(told) == 4:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as interrupted:
        tune(str(recipe), [], tmp_path / "runs", None, 6, 3, None, quiet(), interrupt_after_four)
    tune_dir = Path(str(interrupted.value).split("--resume ")[1].split(" ")[0])
    assert [row["number"] for row in trial_rows(tune_dir)] == [0, 1, 2, 3]  # what the study file holds
    resumed = run_tune("--resume", str(tune_dir), "--trials", "6", "--parallel", "3")
    assert resumed["trials"]["finished"] == 6
    rows = trial_rows(tune_dir)  # trials 4 and 5 were abandoned: new trials take their place
    assert [row["number"] for row in rows] == [0, 1, 2, 3, 6, 7]
    assert all(len(epochs_by_trial(tune_dir)[f"trial {row['number']}"]) >= row["epochs"] for row in rows)


def test_resume_after_a_killed_batch_draws_it_again_and_drops_its_epochs(tmp_path):
    recipe = write_recipe(tmp_path, LEARNING_RATE)
    tune_dir = Path(run_tune(str(recipe), "--trials", "3", "--parallel", "3", "--out", str(tmp_path))["tune_dir"])
    with (tune_dir / "metrics.jsonl").open("a") as metrics:  # what a process killed in the next batch leaves
        metrics.write(json.dumps({"variant": "trial 3", "seed": 0, "epoch": 1, "loss": 0.5}) + "\n")
        metrics.write('{"variant": "trial 4", "se')
    resumed = run_tune("--resume", str(tune_dir), "--trials", "5", "--parallel", "2")
    assert resumed["trials"]["finished"] == 5
    rows = trial_rows(tune_dir)
    assert [row["number"] for row in rows] == list(range(5))
    assert epochs_by_trial(tune_dir) == {f"trial {row['number']}": list(range(1, row["epochs"] + 1)) for row in rows}


def test_a_stack_narrows_to_its_live_trials_and_they_train_as_they_would_alone(tmp_path):
    recipe = write_recipe(tmp_path, 'space = { "optimizer.learning_rate" = { low = 1e-4, high = 1e-1, log = true } }',
                          epochs=8)
    summary = run_tune(str(recipe), "--trials", "12", "--parallel", "6", "--out", str(tmp_path / "runs"))
    tune_dir = Path(summary["tune_dir"])
    rows = trial_rows(tune_dir)
    second = [row for row in rows if row["number"] >= 6]
    assert [row["epochs"] for row in second if row["state"] == "pruned"] == [2, 2, 2]
    # Half the second stack was pruned at epoch 2: the other three trained on as a stack of 3, a program of its own.
    assert summary["compilations"]["train"] == 2
    together = {}
    for line in (tune_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        together.setdefault(record["variant"], []).append(record)
    for row in (row for row in second if row["state"] == "complete"):
        rate = row["values"]["optimizer.learning_rate"]
        alone = train_recipe(str(recipe), tmp_path / "alone", f"optimizer.learning_rate={rate!r}")
        for key in ("loss", "val_loss", "learning_rate"):
            np.testing.assert_allclose([r[key] for r in together[f"trial {row['number']}"]],
                                       [r[key] for r in alone.history], rtol=1e-5, atol=1e-6)


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


def test_trials_of_another_activation_train_with_their_own(tmp_path):
    recipe = write_recipe(tmp_path, 'space = { "model.activation" = ["relu", "tanh"], '
                                    '"optimizer.learning_rate" = { low = 1e-3, high = 1e-1, log = true } }')
    summary = run_tune(str(recipe), "--trials", "4", "--parallel", "4", "--out", str(tmp_path / "runs"))
    tune_dir = Path(summary["tune_dir"])
    rows = trial_rows(tune_dir)
    assert {row["values"]["model.activation"] for row in rows} == {"relu", "tanh"}
    assert summary["compilations"]["train"] == 2  # one program per activation
    together = {}
    for line in (tune_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        together.setdefault(record["variant"], []).append(record["loss"])
    for row in rows:
        values = row["values"]
        alone = train_recipe(str(recipe), tmp_path / "alone", f"model.activation=\"{values['model.activation']}\"",
                             f"optimizer.learning_rate={values['optimizer.learning_rate']!r}")
        np.testing.assert_allclose(together[f"trial {row['number']}"], [r["loss"] for r in alone.history],
                                   rtol=1e-5, atol=1e-6)
