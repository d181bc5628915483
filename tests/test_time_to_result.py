"""Time to result: what a run compiles, what it loads from the cache, and what needs no jax at all.

Timings themselves live in benchmarks/time_to_result.py; these tests hold the
mechanisms that make them: few programs per run, all of them reused by the
next run through the persistent cache, many epochs per device call with the
same results as one epoch per call, and recipe checks that never import jax.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import train_recipe
from dlcli.engine import driver
from dlcli.files import read_jsonl
from dlcli.runs import open_run

CHECK_WITHOUT_JAX = """
import sys
from typer.testing import CliRunner
from dlcli.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(result.exit_code, 'jax' in sys.modules, 'optax' in sys.modules, 'flax' in sys.modules)
print(result.output)
"""


@pytest.mark.parametrize("args, code", [
    (["train", "digits-mlp", "--dry-run"], 0),
    (["train", "gan-2d", "--dry-run", "--set", "optimizer.discriminator.learning_rate=0.001"], 0),
    (["train", "digits-mlp", "--set", "model.activaton=relu"], 2),
    (["train", "digits-mlp", "--set", "model.activation=rleu"], 2),
    (["train", "digits-mlp", "--set", "optimizer.schedule.kind=cosin"], 2),
    (["train", "digits-mlp", "--set", "loss.kind=hubber"], 2),
    (["train", "digits-cnn", "--set", "model.filters='many'"], 2),
    (["train", "gan-2d", "--set", "optimizer.discriminator.b3=0.5"], 2),
])
def test_recipe_checks_answer_without_importing_jax(args, code):
    shown = subprocess.run([sys.executable, "-c", CHECK_WITHOUT_JAX, *args], capture_output=True, text=True,
                           check=True).stdout
    exit_code, *imported = shown.splitlines()[0].split()
    assert (int(exit_code), imported) == (code, ["False", "False", "False"]), shown


def run_json(out: Path, cache: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "dlcli", "train", "mlp-xor", "--out", str(out), "--json", *args],
                          capture_output=True, text=True, env={**os.environ, "DLCLI_CACHE_DIR": cache})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_warm_run_loads_every_program_whole_and_trains_to_the_same_numbers(tmp_path):
    """The second run neither traces nor lowers its programs (dlcli.engine.executables); a changed recipe
    does; with the kept programs gone but JAX's cache warm, runs still train (an executable JAX loaded from
    its own cache serializes without its kernels, so a program to keep is compiled without that cache)."""
    cache, kept = str(tmp_path / "xla"), tmp_path / "xla" / "dlcli-programs"
    first = run_json(tmp_path / "runs", cache)
    entries = sorted(p.name for p in kept.iterdir())
    second = run_json(tmp_path / "runs", cache)
    # model init, optimizer init, the training block, the final evaluation
    assert first["compilations"] == {"programs": 4, "from_cache": 0, "train": 1}
    assert second["compilations"] == {"programs": 4, "from_cache": 4, "train": 1}
    assert first["final"] == second["final"] and first["final"]["accuracy"] == 1.0
    assert first["epochs_per_call"] > 1  # 300 tiny epochs in a handful of device calls
    # kept: the model's and the optimizer's initialisations, the training block, its sums, the final evaluation
    assert sorted(p.name for p in kept.iterdir()) == entries and len(entries) == 5
    losses = lambda summary: [r["loss"] for r in read_jsonl(Path(summary["run_dir"]) / "metrics.jsonl")]  # noqa: E731
    assert losses(first) == losses(second) and len(losses(first)) == 300
    seeded = run_json(tmp_path / "runs", cache, "--seed", "1")  # the seed is data: the same programs, other numbers
    assert seeded["compilations"]["from_cache"] == 4 and losses(seeded) != losses(first)
    other = run_json(tmp_path / "runs", cache, "--set", "optimizer.learning_rate=0.04")
    assert len(list(kept.iterdir())) > len(entries) and losses(other) != losses(first)
    assert other["compilations"]["train"] == 1
    shutil.rmtree(kept)
    run_json(tmp_path / "runs", cache)  # compiles and keeps the programs again
    assert losses(run_json(tmp_path / "runs", cache)) == losses(first)
    off = run_json(tmp_path / "runs", "off")
    assert off["compilations"]["from_cache"] == 0 and not (tmp_path / "off").exists()


@pytest.mark.parametrize("recipe", ["gunpoint-gru", "overfit-demo-dropout"])
def test_recurrent_and_dropout_runs_train_warm_to_the_numbers_they_trained_cold(recipe, tmp_path):
    """Kept programs of a GRU, and programs that pass PRNG keys (dropout), load and train alike. (The GRU's
    initialisation calls LAPACK, so it is never kept: deserialized, it crashed its process.)"""
    env = {**os.environ, "DLCLI_CACHE_DIR": str(tmp_path / "xla")}
    command = [sys.executable, "-m", "dlcli", "train", recipe, "--set", "train.epochs=1", "--out", str(tmp_path), "--json"]
    cold, warm = (subprocess.run(command, capture_output=True, text=True, env=env) for _ in range(2))
    assert cold.returncode == warm.returncode == 0, warm.stderr
    cold, warm = json.loads(cold.stdout), json.loads(warm.stdout)
    assert warm["final"] == cold["final"] and warm["compilations"]["from_cache"] == warm["compilations"]["programs"]


def test_programs_on_several_devices_are_left_to_jax_cache_and_a_second_run_works(tmp_path):
    """A deserialized executable runs on one device: runs on several never keep theirs, and run again fine."""
    env = {**os.environ, "DLCLI_CACHE_DIR": str(tmp_path / "xla"), "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    command = [sys.executable, "-m", "dlcli", "train", "moons-mlp", "--set", "train.epochs=2", "--out", str(tmp_path)]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    assert not (tmp_path / "xla" / "dlcli-programs").exists() and any((tmp_path / "xla").iterdir())


EARLY = ["data.source=moons", "train.epochs=40", "train.batch_size=64", "optimizer.learning_rate=0.05",
         "train.early_stopping={monitor='val_accuracy', patience=4}", "evaluate.metrics=['accuracy', 'auc']"]


def test_many_epochs_per_call_equal_one_epoch_per_call_early_stopping_included(tmp_path, monkeypatch):
    many = train_recipe("moons-mlp", tmp_path / "many", *EARLY)
    monkeypatch.setattr(driver, "MAX_ROWS", 1)
    one = train_recipe("moons-mlp", tmp_path / "one", *EARLY)
    assert many.summary["epochs_per_call"] > 1 and one.summary["epochs_per_call"] == 1
    assert many.summary["ended"] == one.summary["ended"] == "early_stopped"
    untimed = lambda history: [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")}  # noqa: E731
                               for r in history]
    assert untimed(many.history) == untimed(one.history)
    assert many.summary["best_epoch"] == one.summary["best_epoch"]
    for a, b in zip(jax.tree.leaves(open_run(many.run_dir).params), jax.tree.leaves(open_run(one.run_dir).params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_epoch_metrics_on_the_device_agree_with_the_evaluation_report(tmp_path):
    """The val_auc / val_accuracy an epoch records are what `dlcli evaluate --split val` reports."""
    result = train_recipe("moons-mlp", tmp_path, *EARLY[:4], "evaluate.metrics=['accuracy', 'auc']")
    best = result.history[result.summary["best_epoch"] - 1]
    from dlcli.runs import evaluate_run

    report = evaluate_run(result.run_dir, "val")
    assert best["val_accuracy"] == pytest.approx(report["accuracy"], abs=1e-6)
    assert best["val_auc"] == pytest.approx(report["auc"], abs=1e-5)
    assert best["val_loss"] == pytest.approx(report["loss"], rel=1e-5)


@pytest.mark.parametrize("process", ["ready", "killed", "none"])
def test_figures_are_written_by_the_figure_process_or_without_it(tmp_path, process):
    from dlcli.report import figure_process

    if process != "none":
        figure_process.start()
    if process == "killed":
        figure_process._process.kill()
        figure_process._process.wait()
    curves = [{"epoch": e, "loss": 1 / e, "val_loss": 1.5 / e} for e in range(1, 6)]
    figure_process.send([("plot_history", (curves, tmp_path / "curves.png"), {"best_epoch": 4})])  # first, alone
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 500), rng.random(500)
    figure_process.send([("plot_roc", ([0.0, 0.5, 1.0], [0.0, 0.9, 1.0], 0.95, tmp_path / "roc.png"), {}),
                         ("plot_confusion", (np.array([[5, 1], [2, 7]]), ["0", "1"], tmp_path / "confusion.png"), {}),
                         ("plot_score_histograms", (labels, scores, tmp_path / "scores.png"), {})])
    figure_process.wait()
    names = ["confusion.png", "curves.png", "roc.png", "scores.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in names)
