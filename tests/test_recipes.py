"""Every bundled recipe keeps the promise its opening comment makes."""

from __future__ import annotations

import json
import tomllib

import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from conftest import train_recipe
from dlcli.cli import app
from dlcli.recipe import load_recipe
from dlcli.recipe_files import bundled_dir, bundled_names

runner = CliRunner()

# The recipes this test file checks by outcome; other issues add (and test) their own.
FOUNDATION = ["perceptron-xor", "mlp-xor", "gender", "moons-mlp", "iris-mlp", "breast-cancer-mlp", "digits-mlp",
              "diabetes-mlp", "higgs-mlp"]


def test_the_foundation_recipes_are_bundled():
    assert set(FOUNDATION) <= set(bundled_names())


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_recipe_opens_with_its_command_and_validates(name):
    text = (bundled_dir() / f"{name}.toml").read_text()
    assert text.startswith("# dlcli "), f"{name}.toml must open with the command that runs it"
    comment = "\n".join(line for line in text.splitlines() if line.startswith("#")).lower()
    assert "expect" in comment, f"{name}.toml's comment must state the expected result"
    raw = tomllib.loads(text)
    assert raw["name"] == name and raw["description"]
    load_recipe(name)  # the schema accepts it


def test_perceptron_cannot_learn_xor(tmp_path):
    final = train_recipe("perceptron-xor", tmp_path).summary["final"]
    assert final["accuracy"] <= 0.75


def test_mlp_learns_xor(tmp_path):
    final = train_recipe("mlp-xor", tmp_path).summary["final"]
    assert final["accuracy"] == 1.0


def test_gender_network_calls_emily_female_and_frank_male(tmp_path):
    result = train_recipe("gender", tmp_path)
    assert result.summary["final"]["accuracy"] == 1.0
    new = tmp_path / "gender-new.csv"
    new.write_text("name,weight,height\nEmily,128,63\nFrank,155,68\n")
    out = tmp_path / "predictions.csv"
    cli = runner.invoke(app, ["predict", str(result.run_dir), str(new), "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    rows = pacsv.read_csv(out).to_pylist()
    assert [(r["name"], r["prediction"]) for r in rows] == [("Emily", "F"), ("Frank", "M")]
    assert rows[0]["p_F"] > 0.9 and rows[1]["p_M"] > 0.9


@pytest.mark.parametrize("name, metric, bound", [
    ("moons-mlp", "accuracy", 0.95),
    ("iris-mlp", "accuracy", 0.9),
    ("breast-cancer-mlp", "accuracy", 0.95),
    ("digits-mlp", "accuracy", 0.97),
    ("diabetes-mlp", "r2", 0.4),
])
def test_bundled_recipe_reaches_its_stated_test_result(tmp_path, name, metric, bound):
    summary = train_recipe(name, tmp_path).summary
    assert summary["evaluated_on"] == "test"
    assert summary["final"][metric] >= bound


def test_higgs_recipe_trains_on_a_higgs_shaped_parquet_without_recompiling(tmp_path, higgs_parquet):
    result = train_recipe("higgs-mlp", tmp_path, f"data.path={higgs_parquet}", "train.epochs=3")
    summary = result.summary
    assert summary["epochs_run"] == 3
    assert summary["compilations"]["train"] == 1  # one compile, reused by every chunk of 3 epochs
    assert summary["parameters"] == 28 * 100 + 100 + 100 + 1  # 3,001, as Keras' model.summary() shows
    assert summary["evaluated_on"] == "val"
    assert summary["final"]["auc"] > 0.75 and summary["final"]["accuracy"] > 0.65
    history = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history if "loss" in r] == [1, 2, 3]


def test_higgs_recipe_reads_uci_headerless_csv_gz(tmp_path, higgs_parquet):
    import gzip

    import pyarrow.parquet as pq

    table = pq.read_table(higgs_parquet).slice(0, 1000)
    path = tmp_path / "HIGGS.csv.gz"
    with gzip.open(path, "wt") as file:
        for row in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            file.write(",".join(f"{v:.7g}" for v in row) + "\n")
    cli = runner.invoke(app, ["train", "higgs-mlp", "--set", "data.source=csv", "--set", f"data.path={path}",
                              "--set", "data.limit=800", "--set", "train.epochs=1", "--out", str(tmp_path), "--json"])
    assert cli.exit_code == 0, cli.output
    result = json.loads(cli.stdout)
    assert result["final"]["examples"] == 160  # 20% of the first 800 rows
    assert result["parameters"] == 28 * 100 + 100 + 100 + 1  # the 28 columns after the label are the inputs

    # The customary test set is another header-less file; inputs to predict come without labels.
    evaluated = runner.invoke(app, ["evaluate", result["run_dir"], "--data", str(path), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["examples"] == 1000
    features = tmp_path / "events.csv"
    features.write_text("".join(",".join(f"{v:.7g}" for v in row[1:]) + "\n"
                                for row in zip(*(table.column(c).to_pylist()[:5] for c in table.column_names))))
    predicted = runner.invoke(app, ["predict", result["run_dir"], str(features)])
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.stdout.splitlines()) == 1 + 5
