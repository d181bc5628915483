"""The command line as a user meets it: outputs, files, and every mistake as exit 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as sk
from typer.testing import CliRunner

from conftest import write_points
from dlcli.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> None:
    """Exit 2, one message naming what is wrong, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr
    assert message.startswith("error: ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


# -- start-up ----------------------------------------------------------------

def test_help_answers_without_importing_jax():
    probe = "import sys, dlcli.cli; print(sorted({'jax', 'optuna'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
    shown = subprocess.run([sys.executable, "-m", "dlcli", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "train" in shown.stdout and "tune" in shown.stdout


def test_recipes_lists_bundled_recipes_and_prints_one():
    listed = invoke("recipes")
    assert listed.exit_code == 0
    assert "mlp-xor" in listed.stdout and "perceptron" in listed.stdout
    printed = invoke("recipes", "gender")
    assert printed.exit_code == 0 and printed.stdout.startswith("# dlcli train gender")


def test_summary_counts_the_course_network_parameters():
    result = invoke("summary", "gender")
    assert result.exit_code == 0, result.output
    assert re.search(r"total\D*(\d+)", result.stdout).group(1) == "9"  # w1..w6 and b1..b3


# -- train output ------------------------------------------------------------

def test_json_on_stdout_and_one_plain_line_per_epoch_on_stderr(tmp_path):
    result = invoke("train", "mlp-xor", "--set", "train.epochs=5", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # stdout carries nothing but the JSON
    assert summary["epochs_run"] == 5 and Path(summary["run_dir"]).is_dir()
    # Not a terminal, so the progress is plain text: one line per epoch of a short run.
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert all("loss" in line and "samples/s" in line for line in epoch_lines)


def test_dry_run_shows_each_value_and_its_origin(tmp_path):
    result = invoke("train", "mlp-xor", "--set", "train.epochs=7", "--dry-run", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
            for line in result.stdout.splitlines() if line.count("│") >= 4}
    assert rows["train.epochs"] == ["7", "--set"]
    assert rows["model.hidden"] == ["[4]", "recipe file"]
    assert rows["optimizer.b1"] == ["0.9", "default"]
    assert not any(tmp_path.iterdir()), "--dry-run must not train"


def test_run_directory_holds_everything_evaluate_and_predict_need(binary_run):
    run = binary_run.run_dir
    for name in ("recipe.toml", "preprocessing.json", "summary.json", "metrics.jsonl", "checkpoints/best",
                 "checkpoints/last", "plots/curves.png", "plots/roc.png", "plots/confusion_matrix.png"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["parameters"] > 0 and summary["samples_per_s"] > 0 and summary["evaluated_on"] == "test"
    assert "jax" in summary["versions"] and summary["device"]
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, 9))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs[-1])


# -- evaluate and predict -----------------------------------------------------

def test_evaluate_agrees_with_sklearn_and_applies_saved_preprocessing(binary_run, tmp_path):
    run, test_file = binary_run.run_dir, binary_run.run_dir.parent.parent.parent / "test.csv"
    on_split = invoke("evaluate", run, "--split", "test", "--json")
    on_file = invoke("evaluate", run, "--data", test_file, "--json")
    assert on_split.exit_code == 0 and on_file.exit_code == 0, on_split.output + on_file.output
    split_report, file_report = json.loads(on_split.stdout), json.loads(on_file.stdout)
    for key in ("loss", "accuracy", "auc"):
        assert file_report[key] == pytest.approx(split_report[key]), key
    assert file_report["confusion_matrix"] == split_report["confusion_matrix"]
    assert file_report["accuracy"] > 0.85  # raw x1 ~ 150 would wreck an unstandardised model

    out = tmp_path / "predictions.parquet"
    predicted = invoke("predict", run, test_file, "--out", out)
    assert predicted.exit_code == 0, predicted.output
    table = pq.read_table(out)
    labels = pacsv.read_csv(test_file).column("label").to_numpy()
    p_signal = table.column("p_1").to_numpy()
    np.testing.assert_allclose(table.column("p_0").to_numpy() + p_signal, 1.0, atol=1e-6)
    assert table.column("prediction").to_pylist() == [str(int(p > 0.5)) for p in p_signal]
    assert file_report["accuracy"] == pytest.approx(sk.accuracy_score(labels, p_signal > 0.5))
    assert file_report["auc"] == pytest.approx(sk.roc_auc_score(labels, p_signal), abs=1e-6)
    assert file_report["confusion_matrix"] == sk.confusion_matrix(labels, p_signal > 0.5).tolist()
    for name, scores in file_report["per_class"].items():
        assert scores["recall"] == pytest.approx(sk.recall_score(labels, p_signal > 0.5, pos_label=int(name)))


def test_evaluate_defaults_to_the_judged_split_and_checks_its_options(binary_run, tmp_path):
    run = binary_run.run_dir
    default = invoke("evaluate", run, "--json")
    assert default.exit_code == 0 and json.loads(default.stdout)["data"] == "test"
    val = invoke("evaluate", run, "--split", "val", "--json")
    assert val.exit_code == 0 and json.loads(val.stdout)["examples"] == 160
    assert_user_error(invoke("evaluate", run, "--split", "dev"), "--split 'dev'")
    assert_user_error(invoke("evaluate", run, "--split", "val", "--data", tmp_path / "x.csv"), "--split and --data")


def test_predict_writes_csv_refuses_to_overwrite_and_names_missing_columns(binary_run, tmp_path):
    run = binary_run.run_dir
    inputs = tmp_path / "new.csv"
    inputs.write_text("x1,x2\n150.0,-3.0\n110.0,-2.99\n")
    out = tmp_path / "predictions.csv"
    assert invoke("predict", run, inputs, "--out", out).exit_code == 0
    rows = pacsv.read_csv(out).to_pylist()
    assert len(rows) == 2 and set(rows[0]) == {"prediction", "p_0", "p_1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "predictions.csv"]  # no temporary left
    assert out.stat().st_mode & 0o777 == inputs.stat().st_mode & 0o777  # permissions as any file the user writes

    before = out.read_bytes()
    assert_user_error(invoke("predict", run, inputs, "--out", out), str(out), "already exists")
    assert out.read_bytes() == before

    to_stdout = invoke("predict", run, inputs)
    assert to_stdout.exit_code == 0 and to_stdout.stdout.startswith('"prediction"')

    partial = tmp_path / "partial.csv"
    partial.write_text("x1,y\n1.0,2.0\n")
    assert_user_error(invoke("predict", run, partial), "missing column(s) 'x2'")
    empty = tmp_path / "empty.csv"
    empty.write_text("x1,x2\n1.0,\n")
    assert_user_error(invoke("predict", run, empty), "'x2'", "missing")
    assert_user_error(invoke("predict", run, tmp_path / "absent.csv"), "absent.csv", "no such file")
    assert_user_error(invoke("predict", run, inputs, "--out", tmp_path / "no" / "p.csv"), "does not exist")


# -- user mistakes: exit 2, the key/file/column named, no traceback ------------

def write_recipe(folder: Path, body: str) -> Path:
    path = folder / "recipe.toml"
    path.write_text('name = "mistake"\n' + body)
    return path


MLP = '\n[model]\nkind = "mlp"\nhidden = [4]\n'


@pytest.mark.parametrize("overrides, fragments", [
    (["train.epochs=abc"], ["bundled:mlp-xor", "train.epochs", "'abc'", "integer"]),
    (["model.kind=mpl"], ["bundled:mlp-xor", "model.kind", "'mpl'", "Did you mean 'mlp'", "Valid models:", "perceptron"]),
    (["model.activation=relux"], ["model.activation", "'relux'", "Did you mean 'relu'", "leaky_relu"]),
    (["optimizer.kind=adamx"], ["optimizer", "'adamx'", "Did you mean 'adam'", "rmsprop"]),
    (["loss.kind=bce"], ["loss.kind", "'bce'", "Valid losses:", "binary_crossentropy"]),
    (["model.hiden=[3]"], ["bundled:mlp-xor [model]", "'hiden'", "Did you mean 'hidden'"]),
    (["train.epochs.x=3"], ["train.epochs.x", "holds a value"]),
    (["train.epochs"], ["--set 'train.epochs'", "KEY=VALUE"]),
    (["train.batch_size=0"], ["train.batch_size", "full"]),
    (["data.path=nowhere.csv"], ["data.path", "bundled data set"]),
    (['train.early_stopping={monitor="val_loss"}'], ["monitor = 'val_loss'", "no validation split"]),
    (['train.early_stopping={monitor="r2"}'], ["monitor = 'r2'", "Valid: accuracy, loss"]),
])
def test_bad_overrides_exit_2_naming_the_key(tmp_path, overrides, fragments):
    args = [item for text in overrides for item in ("--set", text)]
    assert_user_error(invoke("train", "mlp-xor", *args, "--out", tmp_path), *fragments)


def test_unknown_recipe_key_names_file_and_suggests(tmp_path):
    recipe = write_recipe(tmp_path, '[data]\nsource = "xor"\n' + MLP + "[train]\nepocs = 3\n")
    assert_user_error(invoke("train", recipe), str(recipe), "train.epocs", "Did you mean 'epochs'")


def test_bundled_recipe_name_typo_suggests_the_name():
    assert_user_error(invoke("train", "mlp-xr"), "'mlp-xr'", "Did you mean 'mlp-xor'")
    assert_user_error(invoke("recipes", "gendr"), "Did you mean 'gender'")


def test_missing_recipe_and_data_files_are_named(tmp_path):
    assert_user_error(invoke("train", tmp_path / "absent.toml"), "absent.toml", "does not exist")
    recipe = write_recipe(tmp_path, '[data]\nsource = "csv"\npath = "absent.csv"\ntarget = "label"\n' + MLP)
    assert_user_error(invoke("train", recipe, "--out", tmp_path), "data.path", "absent.csv", "no such file")
    assert_user_error(invoke("evaluate", tmp_path), "not a dlcli run directory")


def test_missing_target_column_is_named_with_a_suggestion(tmp_path):
    write_points(tmp_path / "points.csv", np.zeros((10, 2)), np.arange(10) % 2)
    recipe = write_recipe(tmp_path, '[data]\nsource = "csv"\npath = "points.csv"\ntarget = "lable"\n' + MLP)
    assert_user_error(invoke("train", recipe, "--out", tmp_path), "'lable'", "Did you mean 'label'")


def test_nan_in_a_feature_column_is_named_and_drop_makes_it_train(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 2))
    x[[5, 17], 1] = np.nan
    write_points(tmp_path / "points.csv", x, (x[:, 0] > 0).astype(int))
    recipe = write_recipe(tmp_path, '[data]\nsource = "csv"\npath = "points.csv"\ntarget = "label"\n' + MLP
                          + "[train]\nepochs = 2\n")
    assert_user_error(invoke("train", recipe, "--out", tmp_path), "'x2' (2 rows)", 'data.missing = "drop"')
    dropped = invoke("train", recipe, "--set", "data.missing=drop", "--out", tmp_path, "--json")
    assert dropped.exit_code == 0, dropped.output
    result = json.loads(dropped.stdout)
    assert result["final"]["examples"] == round(58 * 0.2)  # the validation share of the 58 complete rows


def strict_json(text: str):
    """Parse as jq would: NaN and Infinity are not JSON."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def test_unbounded_background_rejection_is_strict_json_null_with_its_reason(tmp_path):
    """Noise-free moons: no background passes the cuts, so 1/FPR is unbounded; train, evaluate and summary.json agree."""
    result = invoke("train", "moons-mlp", "--set", "data.options.noise=0.0", "--set", "train.epochs=5",
                    "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    final = strict_json(result.stdout)["final"]
    assert None in final["background_rejection"].values()
    assert "unbounded" in final["background_rejection_null"]
    run = Path(strict_json(result.stdout)["run_dir"])
    assert strict_json((run / "summary.json").read_text())["final"]["background_rejection"] == \
        final["background_rejection"]
    evaluated = invoke("evaluate", run, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert strict_json(evaluated.stdout)["background_rejection"] == final["background_rejection"]
    shown = invoke("evaluate", run)
    assert "unbounded (no background passes)" in shown.stdout
