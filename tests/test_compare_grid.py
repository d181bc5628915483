"""dlcli compare: a grid over any recipe keys, grouped into shared programs, paired over seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import train_recipe
from dlcli.cli import app
from dlcli.compare.grid import parse_vary, split_values

SMALL = ["--set", "train.epochs=4", "--set", "train.batch_size=50", "--set", "model.hidden=[8]"]


def run_compare(tmp_path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["compare", "moons-mlp", *SMALL, "--out", str(tmp_path), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def histories(run_dir: str) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for line in open(f"{run_dir}/metrics.jsonl"):
        record = json.loads(line)
        out.setdefault((record["variant"], record["seed"]), []).append(record)
    return out


def test_learning_rates_share_one_program_and_each_equals_its_own_run(tmp_path):
    summary = run_compare(tmp_path, "--vary", "optimizer.learning_rate=0.003,0.03", "--seeds", "2")
    assert summary["compilations"]["train"] == 1 and len(summary["groups"]) == 1
    assert summary["groups"][0]["vmapped"] == "variants and seeds"
    together = histories(summary["run_dir"])
    assert sorted(together) == [("optimizer.learning_rate=0.003", 0), ("optimizer.learning_rate=0.003", 1),
                                ("optimizer.learning_rate=0.03", 0), ("optimizer.learning_rate=0.03", 1)]
    # Seed 0 of a variant is `dlcli train` of that variant (the recipe's seed fixes the split for every run).
    alone = train_recipe("moons-mlp", tmp_path / "alone", *SMALL[1::2], "optimizer.learning_rate=0.03")
    for key in ("loss", "val_loss", "val_accuracy", "learning_rate"):
        np.testing.assert_allclose([r[key] for r in together[("optimizer.learning_rate=0.03", 0)]],
                                   [r[key] for r in alone.history], rtol=1e-5, atol=1e-6)
    assert together[("optimizer.learning_rate=0.003", 1)][-1]["learning_rate"] == pytest.approx(0.003)
    assert together[("optimizer.learning_rate=0.03", 1)] != together[("optimizer.learning_rate=0.03", 0)]
    rows = {row["variant"]: row for row in summary["variants"]}
    assert rows["optimizer.learning_rate=0.03"]["seeds"] == 2 and summary["verdict"].count(" won on moons-mlp")
    assert (tmp_path / summary["run_dir"] / "plots" / "by_value.png").stat().st_size > 10_000


def test_penalty_strengths_share_one_program_and_each_equals_its_own_run(tmp_path):
    summary = run_compare(tmp_path, "--vary", "train.l2=0.0,0.01", "--vary", "train.l1=0.0,0.001", "--seeds", "1")
    assert summary["compilations"]["train"] == 1 and len(summary["groups"]) == 1
    together = histories(summary["run_dir"])
    alone = train_recipe("moons-mlp", tmp_path / "alone", *SMALL[1::2], "train.l2=0.01", "train.l1=0.001")
    np.testing.assert_allclose([r["loss"] for r in together[("train.l2=0.01 train.l1=0.001", 0)]],
                               [r["loss"] for r in alone.history], rtol=1e-5, atol=1e-6)
    finals = {label: history[-1]["loss"] for (label, _), history in together.items()}
    assert len(set(finals.values())) == 4  # the strengths do reach their members


def test_dropout_rates_share_one_program_and_each_equals_its_own_run(tmp_path):
    summary = run_compare(tmp_path, "--vary", "model.dropout=0.1,0.4", "--seeds", "1")
    assert summary["compilations"]["train"] == 1 and len(summary["groups"]) == 1
    together = histories(summary["run_dir"])
    alone = train_recipe("moons-mlp", tmp_path / "alone", *SMALL[1::2], "model.dropout=0.4")
    np.testing.assert_allclose([r["loss"] for r in together[("model.dropout=0.4", 0)]],
                               [r["loss"] for r in alone.history], rtol=1e-5, atol=1e-6)
    assert together[("model.dropout=0.1", 0)][-1]["loss"] != together[("model.dropout=0.4", 0)][-1]["loss"]
    without = run_compare(tmp_path, "--vary", "model.dropout=0.0,0.2", "--seeds", "1")
    assert len(without["groups"]) == 2  # no dropout means no Dropout layers: another program


def test_activations_share_one_program_and_each_equals_its_own_run(tmp_path):
    """The activation is an index per member (lax.switch): every element-wise one trains in one program, and
    each member's losses are its own `dlcli train` run's to float tolerance; maxout is wider, its own program."""
    summary = run_compare(tmp_path, "--vary", "model.activation=tanh,relu,maxout",
                          "--vary", "optimizer.learning_rate=0.01,0.03", "--seeds", "1")
    assert [len(g["variants"]) for g in summary["groups"]] == [4, 2] and summary["compilations"]["train"] == 2
    together = histories(summary["run_dir"])
    for activation in ("tanh", "relu"):
        alone = train_recipe("moons-mlp", tmp_path / activation, *SMALL[1::2], f"model.activation={activation}",
                             "optimizer.learning_rate=0.03")
        mine = together[(f'model.activation="{activation}" optimizer.learning_rate=0.03', 0)]
        for key in ("loss", "val_loss", "val_accuracy"):
            np.testing.assert_allclose([r[key] for r in mine], [r[key] for r in alone.history], rtol=1e-5, atol=1e-6)
    finals = {label: history[-1]["loss"] for (label, _), history in together.items()}
    assert len(set(finals.values())) == 6  # each activation reaches its members


def test_clipping_norms_and_weight_decays_share_one_program_and_each_equals_its_own_run(tmp_path):
    summary = run_compare(tmp_path, "--vary", "optimizer.clip_global_norm=0.05,1.0",
                          "--vary", "optimizer.weight_decay=0.001,0.1", "--seeds", "1")
    assert summary["compilations"]["train"] == 1 and len(summary["groups"]) == 1
    together = histories(summary["run_dir"])
    label = "optimizer.clip_global_norm=0.05 optimizer.weight_decay=0.1"
    alone = train_recipe("moons-mlp", tmp_path / "alone", *SMALL[1::2], "optimizer.clip_global_norm=0.05",
                         "optimizer.weight_decay=0.1")
    np.testing.assert_allclose([r["loss"] for r in together[(label, 0)]], [r["loss"] for r in alone.history],
                               rtol=1e-5, atol=1e-6)
    finals = {label: history[-1]["loss"] for (label, _), history in together.items()}
    assert len(set(finals.values())) == 4  # each norm and decay reaches its member


def test_shape_changing_keys_get_their_own_programs(tmp_path):
    summary = run_compare(tmp_path, "--vary", "train.batch_size=25,100", "--vary", "optimizer.learning_rate=0.01,0.1",
                          "--seeds", "1")
    assert len(summary["variants"]) == 4 and len(summary["groups"]) == 2  # one program per batch size
    assert summary["compilations"]["train"] == 2
    assert all(g["vmapped"] == "variants and seeds" for g in summary["groups"])
    curves = tmp_path / summary["run_dir"] / "plots" / "curves.png"
    assert curves.stat().st_size > 10_000  # per epoch and per second: batch sizes do different work per epoch


def test_an_experiment_recipe_brings_its_grid(tmp_path):
    recipe = tmp_path / "sweep.toml"
    recipe.write_text('name = "sweep"\n[data]\nsource = "moons"\n[model]\nkind = "mlp"\nhidden = [8]\n'
                      '[train]\nepochs = 2\nbatch_size = 100\n'
                      '[compare]\nseeds = 2\nvary = { "optimizer.kind" = ["sgd", "adam"] }\n')
    result = CliRunner().invoke(app, ["compare", str(recipe), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [r["variant"] for r in summary["variants"]] == ['optimizer.kind="sgd"', 'optimizer.kind="adam"']
    assert summary["seeds"] == [0, 1] and len(summary["groups"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--vary", "optimizer.learnin_rate=0.1,0.2"], "learnin_rate"),
    (["--vary", "train.batch_size=ten,20"], "batch_size"),
    (["--vary", "model.kernel_size=3,5"], "kernel_size"),
    (["--vary", "optimizer.learning_rate"], "expected KEY=V1,V2"),
    (["--vary", "optimizer.learning_rate=0.1,0.1"], "listed twice"),
    (["--vary", "optimizer.learning_rate=" + ",".join(str(0.001 * (i + 1)) for i in range(400)), "--seeds", "3"],
     "--yes"),
    ([], "Nothing to compare"),
])
def test_grid_mistakes_exit_2_and_name_the_key(args, message, tmp_path):
    result = CliRunner().invoke(app, ["compare", "moons-mlp", "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "compare").exists()  # nothing trained, nothing written


def test_values_are_toml_split_outside_brackets():
    assert split_values('[64],[64, 64],"a,b"') == ["[64]", "[64, 64]", '"a,b"']
    assert parse_vary(["model.hidden=[64],[64,64]", "optimizer.kind=sgd,adam"]) == {
        "model.hidden": [[64], [64, 64]], "optimizer.kind": ["sgd", "adam"]}
