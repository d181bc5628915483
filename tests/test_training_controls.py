"""Regularisation and training controls, judged by what a user sees: weights, metrics, files, exit codes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.data.augment import build_augment
from dlcli.errors import DlcliError
from dlcli.optim import build_optimizer
from dlcli.recipe import OptimizerConfig, load_recipe
from dlcli.report.console import PlainReporter, make_console
from dlcli.runs import evaluate_run, open_run
from dlcli.train.early_stopping import EarlyStopping
from dlcli.train.loop import train
from dlcli.train.step import weight_penalty


def quiet() -> PlainReporter:
    return PlainReporter(make_console(io.StringIO()))


def run(name: str, tmp_path: Path, *settings: str):
    return train(load_recipe(name, list(settings)), tmp_path, quiet())


def kernels_and_biases(params) -> tuple[list[np.ndarray], list[np.ndarray]]:
    leaves = [np.asarray(p) for p in jax.tree.leaves(params)]
    return [p for p in leaves if p.ndim > 1], [p for p in leaves if p.ndim == 1]


# -- L1 / L2, weight decay, clipping --------------------------------------------------------------------------
def test_weight_penalty_counts_weights_not_biases():
    params = {"kernel": jnp.full((2, 3), 2.0), "bias": jnp.full((3,), 100.0)}
    assert float(weight_penalty(params, 0.0, 0.5)) == pytest.approx(0.5 * 6 * 4.0)
    assert float(weight_penalty(params, 0.1, 0.0)) == pytest.approx(0.1 * 6 * 2.0)


def test_per_layer_penalties_use_the_layer_numbers_of_dlcli_summary():
    from dlcli.train.penalties import weights_by_layer
    from dlcli.train.setup import prepare

    params = prepare(load_recipe("overfit-demo", ["train.l2={3=0.5}"])).built.params
    weights = dict(weights_by_layer(params))
    assert sorted(weights) == ["1", "3", "5"]  # the Linear layers of `dlcli summary overfit-demo`
    assert float(weight_penalty(params, 0.0, {"3": 0.5})) == pytest.approx(0.5 * float((weights["3"] ** 2).sum()))
    with pytest.raises(DlcliError, match=r"train.l1 names layer\(s\) '2' that have no weights.*1, 3, 5"):
        prepare(load_recipe("overfit-demo", ["train.l1={2=0.1}"]))


@pytest.mark.slow  # the overfit-demo test covers L2 by outcome in the default run
def test_l2_shrinks_the_trained_weights(tmp_path: Path):
    plain = open_run(run("mlp-xor", tmp_path, "train.epochs=30").run_dir)
    ridge = open_run(run("mlp-xor", tmp_path, "train.epochs=30", "train.l2=0.05").run_dir)
    size = lambda r: sum(float((k ** 2).sum()) for k in kernels_and_biases(r.params)[0])  # noqa: E731
    assert size(ridge) < 0.5 * size(plain)


def test_clip_global_norm_bounds_each_update():
    optimizer = build_optimizer(OptimizerConfig(kind="sgd", learning_rate=1.0, clip_global_norm=0.5), 10)
    params = {"kernel": jnp.zeros((3, 3)), "bias": jnp.zeros(3)}
    grads = {"kernel": jnp.full((3, 3), 100.0), "bias": jnp.full((3,), 100.0)}
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    norm = float(jnp.sqrt(sum(jnp.sum(u ** 2) for u in jax.tree.leaves(updates))))
    assert norm == pytest.approx(0.5, rel=1e-5)


def test_weight_decay_pulls_weights_not_biases():
    optimizer = build_optimizer(OptimizerConfig(kind="sgd", learning_rate=1.0, weight_decay=0.1), 10)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zero, optimizer.init(params), params)
    np.testing.assert_allclose(updates["kernel"], -0.1)
    np.testing.assert_allclose(updates["bias"], 0.0)


def test_reduce_on_plateau_lowers_the_learning_rate(tmp_path: Path):
    # min_delta = 0.9: only a 90% fall in the epoch's loss counts as progress, so after the first epoch
    # (an improvement on nothing) every epoch is a plateau of patience 1 and halves the rate.
    result = run("mlp-xor", tmp_path, "train.epochs=6",
                 "optimizer.reduce_on_plateau={factor=0.5, patience=1, min_delta=0.9}")
    rates = [r["learning_rate"] for r in result.history]  # the rate the next epoch will use
    assert rates == pytest.approx([0.05 * 0.5 ** k for k in range(6)])
    with pytest.raises(DlcliError, match="reduce_on_plateau.factor"):
        build_optimizer(OptimizerConfig(kind="adam", reduce_on_plateau={"factor": 2.0}), 10)


# -- dropout and batch normalisation -------------------------------------------------------------------------
def test_dropout_only_in_training_and_batch_norm_uses_saved_statistics(tmp_path: Path):
    result = run("overfit-demo", tmp_path, "train.epochs=8", "model.dropout=0.5", "model.batch_norm=true",
                 "train.batch_size=20")
    opened = open_run(result.run_dir)
    x = np.asarray(jax.random.normal(jax.random.key(0), (10, 2)))
    first, second = opened.outputs(x), opened.outputs(x)
    np.testing.assert_array_equal(first, second)  # evaluation is deterministic: dropout is off
    np.testing.assert_allclose(opened.outputs(x[:1]), first[:1], rtol=1e-6)  # running statistics, not the batch's
    training = nnx.merge(opened.built.train_graph, opened.params, opened.rest, copy=True)
    assert not np.allclose(np.asarray(training(jnp.asarray(x))), first)  # in training, units are dropped
    stats = [np.asarray(v) for path, v in jax.tree_util.tree_leaves_with_path(opened.rest)
             if "mean" in jax.tree_util.keystr(path)]
    assert stats and any(np.abs(s).max() > 1e-3 for s in stats)  # the checkpoint holds the learnt statistics
    report = evaluate_run(result.run_dir, "val")
    assert report["loss"] == pytest.approx(result.summary["final"]["loss"], rel=1e-6)


# -- early stopping ------------------------------------------------------------------------------------------
def test_patience_counts_epochs_without_improvement_greater_than_min_delta():
    from dlcli.engine.stopping import initial_stop_state, update_stop_state

    def decide(rule: EarlyStopping, values: list[float]) -> tuple[list[tuple[bool, bool]], int]:
        """(is_best, stop) per epoch under the rule the compiled epoch applies, and the best epoch."""
        state, decisions = initial_stop_state(rule), []
        for epoch, value in enumerate(values, 1):
            state, is_best = update_stop_state(rule, state, np.int32(epoch), np.float32(value))
            decisions.append((bool(is_best), bool(state.stopped)))
        return decisions, int(state.best_epoch)

    stopping = EarlyStopping(monitor="val_loss", mode="min", patience=2, min_delta=0.1)
    decisions, best_epoch = decide(stopping, [1.0, 0.95, 0.85, 0.84, 0.83])
    assert decisions == [(True, False), (False, False), (True, False), (False, False), (False, True)]
    assert best_epoch == 3
    eager = EarlyStopping(monitor="val_accuracy", mode=EarlyStopping.resolve_mode("val_accuracy", "auto"), patience=0)
    assert eager.mode == "max" and decide(eager, [0.5, 0.5])[0] == [(True, False), (False, True)]


def test_early_stopping_keeps_and_serves_the_best_epoch(tmp_path: Path):
    result = run("overfit-demo-early-stopping", tmp_path)
    summary, history = result.summary, result.history
    assert summary["ended"] == "early_stopped"
    assert summary["epochs_run"] == summary["best_epoch"] + 10  # patience 10
    best = history[summary["best_epoch"] - 1]
    assert best["val_loss"] == min(r["val_loss"] for r in history)
    assert evaluate_run(result.run_dir, "val")["loss"] == pytest.approx(best["val_loss"], rel=1e-5)
    # The train/val gap at the end is the last weights', not the best ones' (judged once, and not reused here).
    assert summary["end_of_training"]["val"]["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-5)
    assert summary["end_of_training"]["val"]["loss"] > best["val_loss"]


def test_a_run_ending_on_its_best_epoch_reports_the_same_validation_numbers_twice(tmp_path: Path):
    result = run("overfit-demo", tmp_path, "train.epochs=1")
    summary = result.summary
    assert summary["best_epoch"] == 1 and summary["evaluated_on"] == "val"
    final = summary["final"]
    assert summary["end_of_training"]["val"] == {"loss": final["loss"], "accuracy": final["accuracy"],
                                                 "examples": final["examples"]}
    assert final["loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-5)


# -- the overfit-demo family ---------------------------------------------------------------------------------
def gap(result) -> float:
    end = result.summary["end_of_training"]
    return end["val"]["loss"] - end["train"]["loss"]


def test_regularised_variants_overfit_less(tmp_path: Path):
    # 100 epochs instead of the recipes' 300 keeps this quick; the order is the same (see the recipes' comments).
    short = "train.epochs=100"
    plain_run = run("overfit-demo", tmp_path, short)
    plain = gap(plain_run)
    assert plain > 0.25
    # No early stopping configured, and still the best epoch's weights are served (Keras users must ask for that,
    # and restore_best_weights only acts when early stopping fires: keras-team/keras#12511).
    history = plain_run.history
    assert plain_run.summary["best_epoch"] < len(history)
    assert evaluate_run(plain_run.run_dir, "val")["loss"] == pytest.approx(min(r["val_loss"] for r in history), rel=1e-5)
    for variant in ("overfit-demo-l2", "overfit-demo-dropout", "overfit-demo-early-stopping"):
        assert gap(run(variant, tmp_path, short)) < 0.7 * plain, variant


@pytest.mark.slow
def test_regularised_variants_overfit_less_as_bundled(tmp_path: Path):
    plain = gap(run("overfit-demo", tmp_path))
    assert plain > 0.8
    for variant in ("overfit-demo-l2", "overfit-demo-dropout", "overfit-demo-early-stopping"):
        assert gap(run(variant, tmp_path)) < 0.4 * plain, variant


# -- augmentation ----------------------------------------------------------------------------------------------
def test_augmentations_transform_images_reproducibly():
    images = jax.random.uniform(jax.random.key(1), (4, 6, 5, 2))
    key = jax.random.key(2)
    np.testing.assert_array_equal(build_augment({"flip_horizontal": {"probability": 1.0}}, [6, 5, 2])(key, images),
                                  images[:, :, ::-1])
    np.testing.assert_array_equal(build_augment({"flip_vertical": {"probability": 1.0}}, [6, 5, 2])(key, images),
                                  images[:, ::-1])
    np.testing.assert_allclose(build_augment({"rotate": {"degrees": 0}}, [6, 5, 2])(key, images), images, atol=1e-6)
    np.testing.assert_array_equal(build_augment({"crop": {"padding": 0}}, [6, 5, 2])(key, images), images)
    everything = build_augment({"flip_horizontal": True, "rotate": True, "crop": True, "translate": True,
                                "noise": True}, [6, 5, 2])
    once, again = everything(key, images), everything(key, images)
    assert once.shape == images.shape
    np.testing.assert_array_equal(once, again)  # same key, same draws
    assert not np.allclose(once, everything(jax.random.key(3), images))
    assert not np.allclose(once, images)
    assert build_augment({"noise": False}, [6, 5, 2]) is None


def test_augmentation_mistakes_exit_2(tmp_path: Path):
    runner = CliRunner()
    table = runner.invoke(app, ["train", "moons-mlp", "--out", str(tmp_path), "--set",
                                "train.augment={flip_horizontal=true}"])
    assert table.exit_code == 2 and "train.augment needs image inputs" in table.output
    unknown = runner.invoke(app, ["train", "digits-mlp", "--out", str(tmp_path), "--set", "train.augment={rotat=true}"])
    assert unknown.exit_code == 2 and "Did you mean 'rotate'" in unknown.output
    bad = runner.invoke(app, ["train", "digits-mlp", "--out", str(tmp_path), "--set",
                              "train.augment={noise={std=-1}}"])
    assert bad.exit_code == 2 and "train.augment.noise.std" in bad.output
    assert not list(tmp_path.glob("*/*"))  # no run directory before the recipe is known to be sound


@pytest.mark.slow
def test_augmentation_helps_the_small_digits_task(tmp_path: Path):
    augmented = run("digits-augment", tmp_path).summary["final"]
    plain = run("digits-augment", tmp_path, "train.augment={}").summary["final"]
    assert augmented["loss"] < plain["loss"] - 0.04  # measured 0.345 against 0.410
    assert augmented["accuracy"] > plain["accuracy"]  # measured 0.903 against 0.887


# -- divergence and unwritable output ------------------------------------------------------------------------
def test_nan_loss_stops_with_a_clear_message_and_keeps_a_good_checkpoint(tmp_path: Path):
    result = CliRunner().invoke(app, ["train", "diabetes-mlp", "--out", str(tmp_path), "--set", "optimizer.kind=sgd",
                                      "--set", "optimizer.learning_rate=10.0", "--set", "data.standardize=false",
                                      "--set", "train.epochs=3"])
    assert result.exit_code == 2, result.output
    message = result.output
    assert "Training diverged" in message and re.search(r"in epoch \d+, step \d+ of 9", message)
    assert "last finite loss was" in message
    assert "optimizer.learning_rate" in message and "Traceback" not in message
    run_dir = next((tmp_path / "diabetes-mlp").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ended"] == "diverged" and summary["diverged_at"]["epoch"] >= 1
    opened = open_run(run_dir)  # the kept checkpoint loads and holds finite weights
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(opened.params))
    assert (run_dir / "checkpoints" / "last" / "meta.json").is_file()


def test_unwritable_output_is_refused_before_training(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    result = CliRunner().invoke(app, ["train", "mlp-xor", "--out", str(blocker)])
    assert result.exit_code == 2 and "Cannot write run output" in result.output
    assert "training mlp-xor" not in result.output and "Traceback" not in result.output
    from dlcli.checkpoint import ensure_writable

    with pytest.raises(DlcliError, match="Not enough disk space"):
        ensure_writable(tmp_path / "out", needed_bytes=1 << 62)


def test_npz_files_are_never_unpickled(tmp_path: Path):
    data = tmp_path / "objects.npz"
    np.savez(data, x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\n[data]\nsource = "npz"\npath = "objects.npz"\n[model]\nkind = "mlp"\n')
    result = CliRunner().invoke(app, ["train", str(recipe), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "without pickle" in result.output and "objects.npz" in result.output
