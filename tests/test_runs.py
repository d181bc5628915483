"""dlcli runs: listing past runs (half-written and foreign folders included) and comparing them, without jax."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import quiet, train_recipe
from dlcli.cli import app
from dlcli.compare.activations import compare_activations, parse_activations
from dlcli.recipe import load_recipe

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in: {result.stderr}"


def write_folder(path: Path, files: dict[str, str] = {}) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


RECIPE = 'name = "mlp-xor"\nseed = 0\n[model]\nkind = "mlp"\n'
EPOCH = '{"epoch": %d, "loss": 0.5}\n'


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two real runs that differ in their learning rate, a real comparison, and folders no run left whole."""
    root = tmp_path_factory.mktemp("history") / "runs"
    slow = train_recipe("mlp-xor", root, "train.epochs=4", "optimizer.learning_rate=0.01").run_dir
    fast = train_recipe("mlp-xor", root, "train.epochs=4").run_dir
    loaded = load_recipe("mlp-xor", ["train.epochs=3"])
    compared = compare_activations(loaded, parse_activations("relu,tanh"), [0, 1], root, quiet()).run_dir
    return {
        "slow": slow, "fast": fast, "compared": compared,
        "killed": write_folder(root / "mlp-xor" / "20200103-000000", {
            "recipe.toml": RECIPE, "metrics.jsonl": EPOCH % 1 + EPOCH % 2 + '{"epoch": 3, "lo'}),
        "torn": write_folder(root / "mlp-xor" / "20200102-000000", {
            "recipe.toml": RECIPE, "metrics.jsonl": EPOCH % 1, "summary.json": '{"recipe": "mlp-xor", "ended": '}),
        "running": write_folder(root / "other" / "20200104-000000", {
            "recipe.toml": RECIPE.replace("mlp-xor", "other"), "metrics.jsonl": EPOCH % 1, ".lock": str(os.getpid())}),
        "empty": write_folder(root / "other" / "20200101-000000"),
        "foreign": write_folder(root / "notes", {"readme.txt": "my notes"}),
    }


def listed(root: Path, *options: str) -> list[dict]:
    result = invoke("runs", root, "--json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["runs"]


def test_runs_lists_every_folder_newest_first_and_says_what_each_holds(runs):
    root = runs["slow"].parent.parent
    entries = {Path(e["path"]): e for e in listed(root)}

    assert list(entries)[:3] == [runs["compared"], runs["fast"], runs["slow"]]  # newest first
    summary = json.loads((runs["fast"] / "summary.json").read_text())
    fast = entries[runs["fast"]]
    assert (fast["kind"], fast["recipe"], fast["ended"], fast["epochs"], fast["best_epoch"]) == \
        ("run", "mlp-xor", "completed", 4, summary["best_epoch"])
    assert fast["split"] == "train" and fast["headline"] == {k: summary["final"][k] for k in ("accuracy", "auc")}
    assert fast["wall_time_s"] == summary["wall_time_s"] and fast["started"].startswith("20")
    compared = entries[runs["compared"]]
    assert compared["kind"] == "comparison" and compared["ended"] == "completed" and compared["epochs"] == 3
    assert compared["winner"] in ("relu", "tanh") and list(compared["headline"]) == ["loss"]
    # Folders no run left whole are listed as such.
    assert entries[runs["killed"]]["ended"] == "killed" and entries[runs["killed"]]["epochs"] == 2
    assert entries[runs["killed"]]["notes"] == ["metrics.jsonl: last line torn (left out)"]
    assert entries[runs["torn"]]["ended"].startswith("incomplete: summary.json is not valid JSON")
    assert entries[runs["running"]]["ended"] == "running"
    assert entries[runs["empty"]]["ended"] == "incomplete: no recipe.toml, summary.json or metrics.jsonl"
    assert entries[runs["foreign"]]["ended"].startswith("incomplete")
    assert len(entries) == 8


def test_runs_table_keeps_one_line_per_run_when_piped(runs):
    root = runs["slow"].parent.parent
    result = invoke("runs", root)
    assert result.exit_code == 0, result.output
    lines = {folder: [line for line in result.stdout.splitlines() if str(folder) in line] for folder in runs.values()}
    assert all(len(found) == 1 for found in lines.values()), result.stdout
    assert "completed" in lines[runs["fast"]][0] and "train: accuracy" in lines[runs["fast"]][0]
    assert "killed; metrics.jsonl: last line torn" in lines[runs["killed"]][0]


def test_runs_filters_by_recipe_name_or_glob_and_limits(runs):
    root = runs["slow"].parent.parent
    assert {e["recipe"] for e in listed(root, "--recipe", "other")} == {"other"}
    newest = listed(root, "--recipe", "mlp*", "--limit", "2")
    assert [Path(e["path"]) for e in newest] == [runs["compared"], runs["fast"]]
    assert_user_error(invoke("runs", root, "--recipe", "mlp-xr"), "--recipe 'mlp-xr'", "Did you mean 'mlp-xor'?")


def test_a_missing_runs_folder_is_a_user_error(tmp_path):
    assert_user_error(invoke("runs", tmp_path / "nowhere"), str(tmp_path / "nowhere"), "does not exist", "dlcli runs DIR")


def test_runs_compare_overlays_curves_and_shows_results_and_recipe_differences(runs, tmp_path):
    figure = tmp_path / "both.png"
    result = invoke("runs", "compare", runs["slow"], runs["fast"], runs["compared"], "--out", figure, "--json")
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)

    assert comparison["figure"] == str(figure) and figure.stat().st_size > 10_000
    rows = {row["label"].split("/")[-1]: row for row in comparison["runs"]}
    summary = json.loads((runs["slow"] / "summary.json").read_text())
    assert rows[runs["slow"].name]["results"]["loss"] == summary["final"]["loss"]
    assert rows[runs["slow"].name]["best_epoch"] == summary["best_epoch"]
    stamp = runs["compared"].name
    assert {f"{stamp}: relu", f"{stamp}: tanh"} <= set(rows)
    assert rows[f"{stamp}: relu"]["split"] == "train, mean of 2 seeds"
    differences = comparison["recipe_differences"]
    rates = differences["optimizer.learning_rate"]
    assert list(rates.values()) == [0.01, 0.05, 0.05]
    assert "model.kind" not in differences and "train.epochs" in differences


def test_runs_compare_prints_tables_and_writes_the_figure_under_the_first_run(runs):
    result = invoke("runs", "compare", runs["fast"], runs["slow"], runs["killed"])
    assert result.exit_code == 0, result.output
    assert (runs["fast"] / "plots" / "runs-compare.png").is_file()
    assert "optimizer.learning_rate" in result.stdout and "recipe keys that differ" in result.stdout
    assert "last line torn" in result.stdout  # the killed run's curves are drawn from its whole lines


def test_runs_compare_mistakes_exit_2_with_the_fix(runs, tmp_path):
    assert_user_error(invoke("runs", "compare", runs["fast"]), "two runs or more")
    assert_user_error(invoke("runs", "compare", runs["fast"], runs["empty"]), "metrics.jsonl is missing")
    assert_user_error(invoke("runs", "compare", runs["fast"], tmp_path / "nope"), "is not a folder")
    assert_user_error(invoke("runs", "compare", runs["fast"], runs["slow"], "--out", tmp_path / "f.txt"), ".png")


def test_runs_imports_no_jax(runs, tmp_path):
    """Looking back only reads files: listing imports neither jax nor numpy, comparing no jax."""
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom dlcli.cli import app\n"
            f"root, a, b = {str(runs['slow'].parent.parent)!r}, {str(runs['slow'])!r}, {str(runs['compared'])!r}\n"
            "def run(*args):\n"
            "    result = CliRunner().invoke(app, list(args))\n"
            "    assert result.exit_code == 0, result.output\n"
            "    return sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'optax', 'numpy'))\n"
            "assert run('runs', root) == run('runs', root, '--json') == [], run('runs', root)\n"
            f"loaded = run('runs', 'compare', a, b, '--out', {str(tmp_path / 'x.png')!r})\n"
            "assert not [m for m in loaded if not m.startswith('numpy')], loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)
