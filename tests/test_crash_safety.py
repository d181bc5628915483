"""Killed with SIGKILL at any moment, a run resumes to the bit-identical end, and only dlcli speaks.

Each example starts a real ``dlcli train --json`` process that checkpoints
after almost every chunk, kills it at some moment after its run directory
exists (from its first file to a little past its last), then checks what a
user would do next on whatever was left: ``evaluate`` works or says in one
line that no weights were saved yet, and ``train --resume`` ends exactly
where the uninterrupted run ended. The default suite kills two processes
(in mid-run, and before the first checkpoint); ``-m slow`` kills ``MANY``
at random moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_only_dlcli_output

MANY = 30
OUTCOMES: Counter = Counter()

RECIPE = """
name = "kill-test"
seed = 5
[data]
source = "moons"
options = { samples = 600 }
validation_split = 0.2
[model]
kind = "mlp"
hidden = [32, 32]
dropout = 0.2
[train]
epochs = 4
batch_size = 16
chunks_per_epoch = 3
checkpoint_seconds = 0.001
early_stopping = { monitor = "val_loss", patience = 20 }
"""
ENV = {**os.environ, "NO_COLOR": "1"}


def dlcli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlcli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess) -> None:
    assert result.stdout == "" and result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def stored_arrays(checkpoint: Path) -> dict[str, np.ndarray]:
    import orbax.checkpoint as ocp

    with ocp.PyTreeCheckpointer() as checkpointer:
        return checkpointer.restore(checkpoint.resolve())


def metrics_without_timing(run_dir: Path) -> list[dict]:
    from dlcli.files import read_jsonl

    return [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")}
            for r in read_jsonl(run_dir / "metrics.jsonl")]


def run_dirs(out: Path) -> list[Path]:
    return [path for path in out.glob("kill-test/*") if path.is_dir()]  # not the write probe made before them


def start_training(recipe: Path, out: Path, *settings: str) -> subprocess.Popen:
    """A ``dlcli train --json`` process, once it has created its run directory."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "dlcli", "train", str(recipe), "--json", "--out", str(out)]
    for setting in settings:
        command += ["--set", setting]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    while not run_dirs(out) and process.poll() is None and time.perf_counter() - started < 120:
        time.sleep(0.01)
    return process


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted run: its files, and how long it trains once its run directory exists."""
    folder = tmp_path_factory.mktemp("reference")
    recipe = folder / "kill-test.toml"
    recipe.write_text(RECIPE)
    process = start_training(recipe, folder / "runs")
    appeared = time.perf_counter()
    while not list((folder / "runs").glob("kill-test/*/summary.json")) and process.poll() is None:
        time.sleep(0.01)
    seconds = time.perf_counter() - appeared  # from the first file to the summary: the span kills aim at
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert_only_dlcli_output(stdout, stderr)
    summary = json.loads(stdout)
    yield {"recipe": recipe, "seconds": seconds, "summary": summary, "run_dir": Path(summary["run_dir"])}
    print(f"\nkills: {dict(OUTCOMES)}; the run trains for {seconds:.1f} s from its directory to its summary")


def kill_and_resume(reference: dict, out: Path, fraction: float) -> None:
    """Kill a training process ``fraction`` of the way through its run, then check evaluate and --resume."""
    process = start_training(reference["recipe"], out)
    moment = fraction * reference["seconds"]
    time.sleep(moment)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    run_dir, = run_dirs(out)

    evaluated = dlcli("evaluate", run_dir, "--json")
    if evaluated.returncode == 2:  # no weights saved yet
        assert_one_line_error(evaluated)
    else:
        assert evaluated.returncode == 0, f"killed at {moment:.2f}s: {evaluated.stderr}"
        assert_only_dlcli_output(evaluated.stdout, evaluated.stderr)
    resumed = dlcli("train", "--resume", run_dir, "--json")
    if resumed.returncode == 2:
        assert_one_line_error(resumed)
        if "already ended (completed)" not in resumed.stderr:  # killed before the first checkpoint
            assert evaluated.returncode == 2 and "resumable checkpoint" in resumed.stderr, resumed.stderr
            OUTCOMES["before the first checkpoint"] += 1
            return
        OUTCOMES["after the run ended"] += 1
    else:
        OUTCOMES["resumed"] += 1
        assert resumed.returncode == 0, f"killed at {moment:.2f}s: {resumed.stderr}"
        assert_only_dlcli_output(resumed.stdout, resumed.stderr)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"] == reference["summary"]["final"], f"killed at {moment:.2f}s"
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference["run_dir"])
    for name in ("best", "last"):
        ours, theirs = (stored_arrays(folder / "checkpoints" / name) for folder in (run_dir, reference["run_dir"]))
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{name}/{key}, killed at {moment:.2f}s")
    assert not list(run_dir.rglob(".*.tmp")), "a temporary file survived the resume"


def test_a_kill_in_the_middle_resumes_bit_identical(reference, tmp_path):
    kill_and_resume(reference, tmp_path, 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(MANY))
def test_many_kills_at_random_moments(reference, tmp_path, seed):
    kill_and_resume(reference, tmp_path, random.Random(seed).uniform(0.0, 1.1))  # a few land after the end


def test_a_kill_before_the_first_checkpoint_leaves_one_line_answers(reference, tmp_path):
    """Killed while training, before any checkpoint: evaluate and --resume each say so in one line."""
    out = tmp_path / "runs"
    process = start_training(reference["recipe"], out, "train.checkpoint_seconds=600", "train.epochs=100000")
    try:
        deadline = time.time() + 120
        while not list(out.glob("kill-test/*/.lock")) and time.time() < deadline:  # training has begun
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    run_dir, = run_dirs(out)
    assert not (run_dir / "checkpoints").exists()
    evaluated = dlcli("evaluate", run_dir)
    assert_one_line_error(evaluated)
    assert "stopped before its first checkpoint" in evaluated.stderr
    resumed = dlcli("train", "--resume", run_dir)
    assert_one_line_error(resumed)
    assert "stopped before its first checkpoint" in resumed.stderr and "Start a new run" in resumed.stderr
