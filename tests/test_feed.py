"""Fed training: rows the host delivers chunk by chunk train exactly as rows resident on the devices."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jax
import numpy as np

from dlcli.checkpoint import create_run_dir
from dlcli.data import load_data
from dlcli.data.feed import ArrayFeed
from dlcli.data.splits import Prepared
from dlcli.engine.driver import Progress
from dlcli.files import write_text
from dlcli.recipe import load_recipe, to_toml
from dlcli.report.console import PlainReporter, make_console
from dlcli.runs import open_run
from dlcli.train.loop import fit
from dlcli.train.setup import prepare

SETTINGS = ["data.source=digits", "data.validation_split=0.2", "data.test_split=0.2", "model.hidden=[32]",
            "model.dropout=0.3", "loss.kind=categorical_crossentropy", "optimizer.learning_rate=0.01",
            "train.epochs=4", "train.batch_size=64", "train.chunks_per_epoch=3",
            "train.augment={noise={std=0.1}}", "train.early_stopping={monitor='val_accuracy', patience=3}"]


def run(tmp_path: Path, name: str, fed: bool):
    loaded = load_recipe("digits-mlp", SETTINGS)
    recipe = loaded.recipe
    data = load_data(recipe.data, recipe.seed, loaded.resolve_path, task=recipe.task)
    if fed:
        x, y = data.splits["train"]
        data = Prepared({k: v for k, v in data.splits.items() if k != "train"}, data.preprocessing,
                        feed=ArrayFeed(x, y, recipe.seed))
    setup = prepare(loaded, data)
    run_dir = create_run_dir(tmp_path / name, recipe.name)
    write_text(run_dir / "recipe.toml", "# resolved from digits-mlp\n" + to_toml(recipe))
    data.preprocessing.save(run_dir / "preprocessing.json")
    result = fit(setup, run_dir, PlainReporter(make_console(io.StringIO())), setup.initial_state(), Progress())
    return result, run_dir


def test_fed_rows_train_bit_identically_to_resident_rows(tmp_path: Path):
    resident, resident_dir = run(tmp_path, "resident", fed=False)
    fed, fed_dir = run(tmp_path, "fed", fed=True)
    strip = lambda history: [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")} for r in history]  # noqa: E731
    assert strip(fed.history) == strip(resident.history)
    assert fed.summary["final"] == resident.summary["final"]
    for a, b in zip(jax.tree.leaves(open_run(fed_dir).params), jax.tree.leaves(open_run(resident_dir).params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert fed.summary["first_step_s"] > 0
    assert json.loads((fed_dir / "summary.json").read_text())["compilations"]["train"] == 1
