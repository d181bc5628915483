"""Resuming and safe stops: an interrupted run, resumed, ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.recipe import load_recipe
from dlcli.report.console import PlainReporter, make_console
from dlcli.runs import open_run
from dlcli.train.interrupt import Interrupted
from dlcli.train.loop import resume, train

# Dropout, augmentation, reduce-on-plateau and early stopping all carry state
# (RNG counters, a key, a plateau counter, a patience counter) that must survive.
SETTINGS = ["data.source=digits", "data.validation_split=0.2", "data.test_split=0.2", "model.hidden=[32]",
            "model.dropout=0.3", "loss.kind=categorical_crossentropy", "optimizer.learning_rate=0.01",
            "optimizer.reduce_on_plateau={factor=0.5, patience=1, min_delta=0.2}",
            "train.epochs=3", "train.batch_size=64", "train.chunks_per_epoch=3",
            "train.augment={rotate={degrees=10}, noise={std=0.1}}",
            "train.early_stopping={monitor='val_accuracy', patience=3}"]


class Quiet(PlainReporter):
    """A silent reporter that can send this process a real signal after a number of chunks."""

    def __init__(self, signal_after: int | None = None, signum: int = signal.SIGINT):
        super().__init__(make_console(io.StringIO()))
        self.signal_after, self.signum, self.chunks = signal_after, signum, 0

    def advance(self, steps: int) -> None:
        if steps:
            self.chunks += 1
            if self.chunks == self.signal_after:
                os.kill(os.getpid(), self.signum)


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")} for r in history]


def best_leaves(run_dir: Path) -> list[np.ndarray]:
    run = open_run(run_dir)
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves((run.params, run.rest))]


def test_resume_mid_epoch_is_bit_identical(tmp_path: Path):
    full = train(load_recipe("mlp-xor", SETTINGS), tmp_path / "full", Quiet())

    with pytest.raises(Interrupted) as stopped:  # after chunk 5 of 9: in the middle of epoch 2
        train(load_recipe("mlp-xor", SETTINGS), tmp_path / "cut", Quiet(signal_after=5))
    assert stopped.value.exit_code == 130
    run_dir = next((tmp_path / "cut" / "mlp-xor").iterdir())
    assert "dlcli train --resume" in str(stopped.value) and str(run_dir) in str(stopped.value)
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["ended"] == "interrupted" and saved["epoch"] == 2 and saved["chunk"] == 2
    (run_dir / "notes.txt").write_text("mine")  # the user's own file must survive the resume

    resumed = resume(run_dir, Quiet())

    assert without_timing(resumed.history) == without_timing(full.history)
    assert without_timing([json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]) == \
        without_timing(full.history)
    for a, b in zip(best_leaves(full.run_dir), best_leaves(run_dir)):
        np.testing.assert_array_equal(a, b)
    assert resumed.summary["final"] == full.summary["final"]
    assert resumed.summary["end_of_training"] == full.summary["end_of_training"]
    assert resumed.summary["best_epoch"] == full.summary["best_epoch"]
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert [p.name for p in (tmp_path / "cut" / "mlp-xor").iterdir()] == [run_dir.name]  # no new run directory


def test_resume_refuses_finished_runs_and_other_folders(tmp_path: Path):
    runner = CliRunner()
    done = train(load_recipe("mlp-xor", ["train.epochs=2"]), tmp_path, Quiet())
    result = runner.invoke(app, ["train", "--resume", str(done.run_dir)])
    assert result.exit_code == 2 and "already ended (completed)" in result.output
    result = runner.invoke(app, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "not a dlcli run directory" in result.output
    result = runner.invoke(app, ["train", "mlp-xor", "--resume", str(done.run_dir)])
    assert result.exit_code == 2 and "--resume" in result.output
    assert "Traceback" not in result.output


SLOW_RECIPE = """
name = "signal-test"
seed = 0
[data]
source = "moons"
options = { samples = 2000 }
[model]
kind = "mlp"
hidden = [64, 64]
[train]
epochs = 100000
batch_size = 8
chunks_per_epoch = 8
"""


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130),
                                          pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)])
def test_a_real_signal_checkpoints_and_exits(tmp_path: Path, signum: int, code: int):
    recipe = tmp_path / "signal-test.toml"
    recipe.write_text(SLOW_RECIPE)
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "dlcli", "train", str(recipe), "--out", str(tmp_path / "runs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        for line in process.stdout:  # wait until training has really started
            if re.match(r"epoch +1/", line) or time.time() > deadline:
                break
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    run_dir = next((tmp_path / "runs" / "signal-test").iterdir())
    assert f"dlcli train --resume {run_dir}" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ended"] == "interrupted" and summary["signal"] == signal.Signals(signum).name
    assert summary["epochs_run"] >= 1
    # The saved state is loadable and is what evaluate would use.
    assert all(np.isfinite(leaf).all() for leaf in best_leaves(run_dir))
    assert (run_dir / "checkpoints" / "last" / "meta.json").is_file()


def test_a_run_directory_is_trained_by_one_process_at_a_time(tmp_path: Path):
    from dlcli.checkpoint import run_lock
    from dlcli.errors import DlcliError

    with run_lock(tmp_path):
        with pytest.raises(DlcliError, match="is being trained by process"):
            with run_lock(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()
    for left in ("999999999", "", "0"):  # left by a process killed with SIGKILL (empty: by an older dlcli)
        (tmp_path / ".lock").write_text(left)
        with run_lock(tmp_path):
            assert (tmp_path / ".lock").read_text() == str(os.getpid())


@pytest.mark.parametrize("small_bytes", [64 * 2**20, 0])  # a small state's one msgpack file; orbax's OCDBT
def test_checkpoints_are_orbax_checkpoints_whatever_their_size(tmp_path: Path, monkeypatch, small_bytes: int):
    """orbax restores what dlcli writes, and dlcli restores it without orbax: the same arrays, dtypes included."""
    import orbax.checkpoint as ocp

    from dlcli import checkpoint
    from dlcli.checkpoint import load_checkpoint, save_checkpoint

    monkeypatch.setattr(checkpoint, "SMALL_CHECKPOINT_BYTES", small_bytes)
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "half": jax.numpy.ones(3, jax.numpy.bfloat16),
            "key": jax.random.key(3), "step": np.int32(7)}
    save_checkpoint(tmp_path / "last", tree, {"format": 2})
    assert (tmp_path / "last" / "meta.json").is_file()
    with ocp.PyTreeCheckpointer() as checkpointer:
        by_orbax = checkpointer.restore((tmp_path / "last").resolve())
    by_dlcli = load_checkpoint(tmp_path / "last", tree)
    expected = [np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                           else leaf) for leaf in jax.tree.leaves(tree)]
    assert len(by_orbax) == len(expected)
    for stored, restored, want in zip((by_orbax[key] for key in sorted(by_orbax)), jax.tree.leaves(by_dlcli), expected):
        restored = jax.random.key_data(restored) if jax.dtypes.issubdtype(restored.dtype, jax.dtypes.prng_key) \
            else restored
        for got in (np.asarray(stored), np.asarray(restored)):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
