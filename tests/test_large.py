"""Large Parquet data sets: streamed from disk, or shared among processes, each reading its own row groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.recipe import load_recipe
from dlcli.train.interrupt import Interrupted
from dlcli.train.loop import resume, train
from test_multihost import free_port
from test_resume import Quiet, best_leaves, without_timing

ROWS, PARTS = 12_000, 10


def write_event_parts(folder: Path, rows: int, parts: int, seed: int, row_group_size: int | None = None,
                      spark_markers: bool = True) -> Path:
    """``rows`` events (label, then six features f0..f5, the label learnable from the first three) as
    ``parts`` Parquet parts named as Spark names them, of 4 row groups each unless ``row_group_size`` says;
    with ``spark_markers``, a _SUCCESS marker and hidden .crc files beside them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 6)).astype(np.float32)
    y = (x[:, :3].sum(1) + 0.5 * rng.standard_normal(rows) > 0).astype(np.int64)
    for p, idx in enumerate(np.array_split(np.arange(rows), parts)):
        name = f"part-{p:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        table = pa.table([y[idx], *(x[idx, i] for i in range(6))], names=["label", *(f"f{i}" for i in range(6))])
        pq.write_table(table, folder / name, row_group_size=row_group_size or len(idx) // 4 + 1)
        if spark_markers:
            (folder / f".{name}.crc").write_bytes(b"crc")
    if spark_markers:
        (folder / "_SUCCESS").touch()
    return folder


@pytest.fixture(scope="module")
def spark_folder(tmp_path_factory) -> Path:
    """A Spark-style folder of 10 Parquet parts (4 row groups each), a _SUCCESS marker and .crc files."""
    return write_event_parts(tmp_path_factory.mktemp("events"), ROWS, PARTS, seed=0)


def settings(folder: Path, *more: str) -> list[str]:
    return [f"data.path={folder}", "data.column_names=[]", "train.epochs=3", "train.batch_size=64", *more]


def test_a_streamed_run_learns_and_records_how_it_read(spark_folder: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["train", "higgs-mlp", *sum((["--set", s] for s in settings(
        spark_folder, "data.stream=true")), []), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["final"]["accuracy"] > 0.88
    assert summary["data"]["stream"] is True and summary["data"]["local_rows"] + summary["final"]["examples"] == ROWS
    assert summary["compilations"]["train"] == 1 and summary["first_step_s"] > 0


def test_auto_streams_only_what_exceeds_the_memory_budget(spark_folder: Path, tmp_path: Path):
    small = train(load_recipe("higgs-mlp", settings(spark_folder, "train.epochs=1", "data.memory_gb=0.00001")),
                  tmp_path, Quiet())
    assert small.summary["data"]["stream"] is True and "data.memory_gb" in small.summary["data"]["why"]
    roomy = train(load_recipe("higgs-mlp", settings(spark_folder, "train.epochs=1")), tmp_path, Quiet())
    assert roomy.summary["data"]["stream"] is False and "half of this machine" in roomy.summary["data"]["why"]


def test_a_streamed_run_resumes_bit_identically(spark_folder: Path, tmp_path: Path):
    overrides = settings(spark_folder, "data.stream=true", "data.shuffle_buffer=2000", "train.chunks_per_epoch=4",
                         "model.dropout=0.2")
    full = train(load_recipe("higgs-mlp", overrides), tmp_path / "full", Quiet())
    with pytest.raises(Interrupted):  # in the middle of epoch 2
        train(load_recipe("higgs-mlp", overrides), tmp_path / "cut", Quiet(signal_after=6))
    run_dir = next((tmp_path / "cut" / "higgs-mlp").iterdir())
    resumed = resume(run_dir, Quiet())
    assert without_timing(resumed.history) == without_timing(full.history)
    for a, b in zip(best_leaves(full.run_dir), best_leaves(run_dir)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("setting, message", [
    ("data.missing=drop", "data.missing = \"drop\" needs the whole table in memory"),
    ("data.one_hot=[\"f1\"]", "data.one_hot needs the whole table in memory"),
    ("data.limit=100", "data.limit is not available when the data set is streamed"),
])
def test_settings_a_stream_cannot_honour_exit_2(spark_folder: Path, tmp_path: Path, setting: str, message: str):
    args = sum((["--set", s] for s in settings(spark_folder, "data.stream=true", setting)), [])
    result = CliRunner().invoke(app, ["train", "higgs-mlp", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


def test_two_processes_each_read_half_and_reach_the_one_process_accuracy(spark_folder: Path, tmp_path: Path):
    command = [sys.executable, "-m", "dlcli", "train", "higgs-mlp", *sum((["--set", s] for s in settings(
        spark_folder)), []), "--json"]
    coordinator = f"localhost:{free_port()}"
    workers = [subprocess.Popen([*command, "--out", str(tmp_path / f"p{i}")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "DLCLI_COORDINATOR": coordinator, "DLCLI_NUM_PROCESSES": "2",
                                     "DLCLI_PROCESS_ID": str(i)}) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    shared = json.loads(outputs[0][0])
    single = train(load_recipe("higgs-mlp", settings(spark_folder, "data.stream=true")), tmp_path / "one", Quiet())
    data = shared["data"]
    assert data["processes"] == 2 and data["stream"] is False  # each holds its share in memory
    assert 0.4 < data["local_rows"] / single.summary["data"]["local_rows"] < 0.6
    assert shared["final"]["examples"] == single.summary["final"]["examples"]  # the same held-out rows
    assert abs(shared["final"]["accuracy"] - single.summary["final"]["accuracy"]) < 0.015


SHARED_VALIDATION = """
import json, sys
import jax, numpy as np
from dlcli.engine.program import EpochSpec, epoch_record
from dlcli.engine.validation import shard_held_out
from dlcli.recipe import load_recipe
from dlcli.train.setup import prepare
from dlcli.train.sharding import gather_rows, maybe_initialize_distributed

maybe_initialize_distributed()
setup = prepare(load_recipe("higgs-mlp", sys.argv[1:]))
share, y = setup.data.splits["val"]
x = share.release()
whole = gather_rows(x)  # every process's rows in process order, as one process would hold them
built, put = setup.built, setup.placement.put_replicated
spec = EpochSpec(built.task, built.loss_fn, built.eval_graph, setup.wanted, setup.stopping, setup.schedule)
sums = put({"loss": np.float32(1.0), "count": np.float32(1.0), "correct": np.float32(1.0)})
record = jax.jit(lambda state, val: epoch_record(spec, sums, state, val))
state, targets = put(setup.initial_state()), put(y)
shared = record(state, (shard_held_out(x, setup.placement.mesh), targets))
resident = record(state, (put(whole), targets))
print(json.dumps({"rows": len(whole), **{key: [float(shared[key]), float(resident[key])] for key in shared}}))
"""


def test_two_processes_validate_like_one_process_holding_every_row(spark_folder: Path, tmp_path: Path):
    """Each process keeps only its held-out rows, yet the epoch's validation numbers are those of the whole split."""
    command = [sys.executable, "-c", SHARED_VALIDATION, *settings(spark_folder, "data.validation_split=0.3")]
    coordinator = f"localhost:{free_port()}"
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                env={**os.environ, "DLCLI_COORDINATOR": coordinator, "DLCLI_NUM_PROCESSES": "2",
                                     "DLCLI_PROCESS_ID": str(i)}) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    numbers = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert abs(numbers.pop("rows") - 0.3 * ROWS) < 0.01 * ROWS  # held out per row group, rounded there
    assert {"val_loss", "val_accuracy", "val_auc"} <= set(numbers)
    for key, (shared, resident) in numbers.items():
        assert shared == pytest.approx(resident, rel=1e-6, abs=1e-7), key
