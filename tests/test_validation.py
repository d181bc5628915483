"""Held-out rows read from disk give the numbers of the same rows held in memory, and leave no file behind."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.data.spill import SpilledRows
from dlcli.engine.driver import Engine
from dlcli.engine.program import epoch_record
from dlcli.engine.validation import DiskInputs
from dlcli.recipe import load_recipe
from dlcli.train.loop import train
from dlcli.train.setup import prepare
from test_large import write_event_parts
from test_resume import Quiet

ROWS = 30_000  # half of them held out: 15,000 rows, four chunks of 4096 rows and a part


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_event_parts(tmp_path_factory.mktemp("events"), ROWS, 4, seed=1, row_group_size=2000,
                             spark_markers=False)


def settings(folder: Path, *more: str) -> list[str]:
    return [f"data.path={folder}", "data.column_names=[]", "data.stream=true", "data.validation_split=0.5",
            "train.batch_size=64", *more]


def test_a_streamed_run_validates_from_disk_with_the_numbers_of_resident_rows(folder: Path, tmp_path: Path):
    setup = prepare(load_recipe("higgs-mlp", settings(folder)))
    spilled, y = setup.data.splits["val"]
    assert isinstance(spilled, SpilledRows) and len(spilled) == len(y) > 3 * 4096
    rows = spilled[:]  # the same rows, in memory
    assert np.isfinite(rows).all() and abs(rows.mean()) < 0.1  # standardised with the training statistics
    chunked = SpilledRows(len(rows), rows.shape[1], folder=tmp_path, chunk_rows=4096)  # several chunks
    chunked.write(0, rows)
    engine = Engine(setup, [setup.recipe.seed])
    state = setup.initial_state()
    sums = {"loss": np.float32(1.0), "count": np.float32(1.0), "correct": np.float32(1.0)}
    record = jax.jit(lambda state, val: epoch_record(engine.spec, sums, state, val))
    targets = setup.placement.put_replicated(y)
    resident = {k: float(v) for k, v in record(state, (setup.placement.put_replicated(rows), targets)).items()}
    for inputs in (DiskInputs(spilled), DiskInputs(chunked)):
        assert {k: float(v) for k, v in record(state, (inputs, targets)).items()} == resident
    in_memory = engine.predictor.judge(setup.built, state.params, state.rest, setup.placement.put_replicated(rows), y)
    for held, judged in zip(in_memory, engine.predictor.judge(setup.built, state.params, state.rest, chunked, y)):
        np.testing.assert_array_equal(held, judged)
    chunked.close()
    assert not chunked.path.exists()


def test_a_streamed_run_and_its_evaluation_leave_no_held_out_file_behind(folder: Path, tmp_path: Path, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    result = train(load_recipe("higgs-mlp", settings(folder, "train.epochs=2")), tmp_path / "runs", Quiet())
    assert result.summary["final"]["accuracy"] > 0.85
    assert result.summary["final"]["examples"] == 15_000
    assert list(temporary.iterdir()) == []
    evaluated = CliRunner().invoke(app, ["evaluate", str(result.run_dir), "--json"])  # the rows spilled again
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == result.summary["final"]["accuracy"]
    assert list(temporary.iterdir()) == []


def test_no_room_for_the_held_out_rows_is_a_message_exit_2(folder: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    result = CliRunner().invoke(app, ["train", "higgs-mlp", *sum((["--set", s] for s in settings(folder)), []),
                                      "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "held-out rows" in text and "Set TMPDIR to a folder with room" in text and "Traceback" not in text
