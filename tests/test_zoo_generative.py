"""Autoencoders and GANs: reconstruction and adversarial tasks end to end."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.data.mixtures import ring_centres
from dlcli.errors import DlcliError
from dlcli.models import build_model
from dlcli.recipe import load_recipe
from dlcli.summary import summarize
from conftest import train_recipe as run_recipe


def modes_covered(samples: np.ndarray, modes: int = 8, radius: float = 2.0, near: float = 0.25) -> tuple[int, float]:
    """How many ring modes get >= 2% of the samples within ``near``; and the fraction near any mode."""
    distance = np.linalg.norm(samples[:, None] - ring_centres(modes, radius)[None], axis=-1)  # (N, modes)
    close = distance.min(axis=1) < near
    counts = np.bincount(distance.argmin(axis=1)[close], minlength=modes)
    return int((counts >= 0.02 * len(samples)).sum()), float(close.mean())


def test_digits_autoencoder_reconstructs_and_plots_its_latent_space(tmp_path):
    result = run_recipe("digits-autoencoder", tmp_path, "train.epochs=3")
    summary, plots = result.summary, result.run_dir / "plots"
    assert summary["task"] == "reconstruction" and summary["compilations"]["train"] == 1
    assert summary["final"]["mse"] < 0.08  # per pixel; predicting the mean image gives about 0.1
    assert (plots / "latent_space.png").stat().st_size > 10_000
    assert (plots / "reconstructions.png").is_file()
    assert "reconstruction_loss" in result.history[-1]
    evaluated = CliRunner().invoke(app, ["evaluate", str(result.run_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["mse"] == pytest.approx(summary["final"]["mse"], rel=1e-4) and "mae" in report
    np.savez(tmp_path / "new.npz", x=np.zeros((5, 8, 8, 1), np.float32))  # no y: the inputs are the targets
    on_file = CliRunner().invoke(app, ["evaluate", str(result.run_dir), "--data", str(tmp_path / "new.npz"), "--json"])
    assert on_file.exit_code == 0, on_file.output
    assert json.loads(on_file.stdout)["examples"] == 5


def test_vae_saves_samples_decoded_from_noise(tmp_path):
    result = run_recipe("digits-autoencoder", tmp_path, "model.kind=vae", "train.epochs=3")
    samples = np.load(result.run_dir / "samples.npz")["x"]
    assert samples.shape == (1000, 8, 8, 1) and 0.0 <= samples.min() and samples.max() <= 1.0
    assert (result.run_dir / "plots" / "samples.png").is_file()
    assert result.history[-1]["loss"] > result.history[-1]["reconstruction_loss"]  # the KL term


def test_denoising_corrupts_training_inputs_and_sparse_penalises_the_code():
    x = jnp.full((4, 8, 8, 1), 0.5)
    clean = build_model("autoencoder", {"latent": 4}, (8, 8, 1), 1, seed=0)
    noisy = build_model("autoencoder", {"latent": 4, "denoising": 0.3, "sparse": 0.1}, (8, 8, 1), 1, seed=0)
    outputs, penalty = noisy.train_outputs(x)
    assert not jnp.allclose(outputs, clean(x)) and jnp.allclose(noisy(x), clean(x))  # noise only in training
    assert (penalty > 0).all() and (clean.train_outputs(x)[1] == 0).all()


def test_a_model_that_fixes_the_task_rejects_another(tmp_path):
    with pytest.raises(DlcliError, match="task = 'classification' but model.kind = 'autoencoder' trains a reconstruction"):
        load_recipe("digits-autoencoder", ["task=classification"])


def test_discriminator_optimizer_on_a_model_without_one_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["train", "digits-cnn", "--set", "optimizer.discriminator={kind=\"adam\"}",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "applies to a GAN" in result.output


def test_gan_step_updates_both_networks_and_reports_both_losses(tmp_path):
    result = run_recipe("gan-2d", tmp_path, "train.epochs=1", "data.options.samples=1000")
    record = result.history[-1]
    assert {"discriminator_loss", "generator_loss"} <= set(record)
    assert result.summary["task"] == "adversarial" and result.summary["compilations"]["train"] == 1
    assert np.load(result.run_dir / "samples.npz")["x"].shape == (1000, 2)


def test_digits_gan_draws_a_sample_grid_every_epoch(tmp_path):
    result = run_recipe("digits-gan", tmp_path, "train.epochs=2")
    grids = sorted(p.name for p in (result.run_dir / "plots" / "samples").iterdir())
    assert grids == ["epoch_001.png", "epoch_002.png"]
    assert np.load(result.run_dir / "samples.npz")["x"].shape == (1000, 8, 8, 1)


@pytest.mark.parametrize("recipe,expected", [
    ("gan-2d", ["generator.0: Linear", "discriminator.1: MinibatchStd"]),
    ("digits-autoencoder", ["encoder.4: Linear", "decoder.4: Linear"]),
    ("long-memory-lstm", ["forward.0: LSTMCell(16)", "head: Linear (last step)"])])
def test_summary_traces_composite_models(recipe, expected):
    rows, total, _ = summarize(load_recipe(recipe))
    names = [row.name for row in rows]
    assert all(name in names for name in expected)
    assert sum(row.parameters for row in rows) == total


@pytest.mark.slow
def test_gan_2d_covers_the_modes_of_the_mixture(tmp_path):
    result = run_recipe("gan-2d", tmp_path)
    covered, close = modes_covered(np.load(result.run_dir / "samples.npz")["x"])
    assert covered >= 7 and close >= 0.5


@pytest.mark.slow
def test_digits_autoencoder_reaches_its_stated_error(tmp_path):
    assert run_recipe("digits-autoencoder", tmp_path).summary["final"]["mse"] <= 0.045
