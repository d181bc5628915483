"""CNN and recurrent models: shapes from the data, compiled once, the lecture's results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcli.data.bundled import DATASETS
from dlcli.errors import DlcliError
from dlcli.models import build_model
from conftest import train_recipe as run_recipe

def output_shape(model, shape):
    return jax.eval_shape(model, jax.ShapeDtypeStruct(shape, jnp.float32)).shape


SHAPES = {"cnn": (8, 8, 1), "lenet": (28, 28, 1), "rnn": (12, 3), "lstm": (12, 3), "gru": (12, 3)}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_every_zoo_model_maps_data_shaped_inputs_to_outputs(kind):
    model = build_model(kind, {}, SHAPES[kind], 5, seed=0)
    assert output_shape(model, (4, *SHAPES[kind])) == (4, 5)


@pytest.mark.parametrize("kind,shape", [("cnn", (8, 8)), ("lstm", (12,)), ("gru", (12, 3))])
def test_channel_and_feature_axes_are_added_or_read_from_the_data(kind, shape):
    settings = {"bidirectional": True, "layers": 2} if kind == "gru" else {}
    model = build_model(kind, settings, shape, 3, seed=0)
    assert output_shape(model, (2, *shape)) == (2, 3)


def test_cnn_on_flat_features_says_what_shape_it_needs():
    with pytest.raises(DlcliError, match=r"\(H, W\) or \(H, W, C\).*\[64\]"):
        build_model("cnn", {}, (64,), 10, seed=0)


def test_recurrent_model_on_images_says_what_shape_it_needs():
    with pytest.raises(DlcliError, match=r"\(T, F\)"):
        build_model("lstm", {}, (8, 8, 1), 10, seed=0)


def test_unknown_model_setting_names_the_valid_ones():
    with pytest.raises(DlcliError, match="unknown key 'filter'.*Did you mean 'filters'"):
        build_model("cnn", {"filter": [8]}, (8, 8, 1), 10, seed=0)


def test_packaged_data_sets_load_offline_with_their_shapes():
    mnist = DATASETS.build("mnist", {}, 0)
    assert mnist.x.shape == (5000, 28, 28, 1) and 0.0 <= mnist.x.min() and mnist.x.max() <= 1.0
    assert sorted(np.unique(mnist.y)) == list(range(10))
    gunpoint = DATASETS.build("gunpoint", {}, 0)
    assert gunpoint.x.shape == (200, 150, 1) and sorted(np.unique(gunpoint.y)) == [0, 1]


def test_digits_cnn_trains_with_one_compilation(tmp_path):
    result = run_recipe("digits-cnn", tmp_path, "train.epochs=1", "model.filters=[8, 16]", "model.dense=[32]")
    assert result.summary["compilations"]["train"] == 1
    assert result.summary["final"]["accuracy"] > 0.3  # ten classes: chance is 0.1


def test_lstm_regression_on_sine_waves_compiles_once(tmp_path):
    result = run_recipe("sine-lstm", tmp_path, "train.epochs=2", "data.options.samples=600", "model.hidden=16")
    assert result.summary["compilations"]["train"] == 1
    assert result.summary["final"]["r2"] > 0.5


@pytest.mark.slow  # two full runs, about 35 s
def test_lstm_remembers_what_a_plain_rnn_forgets(tmp_path):
    """The lecture's reason for the LSTM: a value flagged 20+ steps back must be written and kept."""
    lstm = run_recipe("long-memory-lstm", tmp_path / "lstm")
    rnn = run_recipe("long-memory-lstm", tmp_path / "rnn", "model.kind=rnn")
    assert lstm.summary["final"]["accuracy"] >= 0.9
    assert rnn.summary["final"]["accuracy"] <= 0.75


@pytest.mark.slow
@pytest.mark.parametrize("recipe,metric,threshold", [
    ("digits-cnn", "accuracy", 0.98), ("mnist-lenet", "accuracy", 0.95), ("sine-lstm", "r2", 0.95),
    ("gunpoint-gru", "accuracy", 0.85), ("long-memory-lstm", "accuracy", 0.95)])
def test_bundled_zoo_recipe_reaches_its_stated_result(tmp_path, recipe, metric, threshold):
    assert run_recipe(recipe, tmp_path).summary["final"][metric] >= threshold


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_and_pool_compute_what_xla_convolution_and_reduce_window_do(padding):
    from flax import nnx

    from dlcli.models.cnn import Conv2D, MaxPool

    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 3))
    conv = Conv2D(3, 4, 3, padding, nnx.Rngs(0))
    expected = jax.lax.conv_general_dilated(x, conv.kernel[...], (1, 1), padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv.bias[...]
    assert jnp.allclose(conv(x), expected, atol=1e-5)
    assert jnp.allclose(MaxPool(2)(x), nnx.max_pool(x, (2, 2), strides=(2, 2)))


SMALL = {"cnn": "filters = [4]\ndense = [8]", "gru": "hidden = 4"}


@pytest.mark.parametrize("kind,shape", [("cnn", (6, 6, 2)), ("gru", (7, 3))])
def test_images_and_sequences_from_npz_take_their_shape_from_the_file(tmp_path, kind, shape):
    from dlcli.recipe import load_recipe
    from dlcli.report.console import make_reporter
    from dlcli.train.loop import train

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, *shape)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x.reshape(64, -1).mean(axis=1) > 0).astype(np.int64))
    (tmp_path / "r.toml").write_text(f'name = "npz-{kind}"\n[data]\nsource = "npz"\npath = "data.npz"\n'
                                     f'[model]\nkind = "{kind}"\n{SMALL[kind]}\n[train]\nepochs = 1\nbatch_size = 16\n')
    result = train(load_recipe(str(tmp_path / "r.toml")), tmp_path / "runs", make_reporter(quiet=True))
    assert result.summary["task"] == "classification" and result.summary["compilations"]["train"] == 1


@pytest.mark.parametrize("in_shape", [(8, 8), (8, 8, 1)])
def test_a_feature_map_too_small_to_pool_names_its_block(in_shape):
    """8x8 digits pooled by 2 enter blocks 2, 3 and 4 at 4x4, 2x2 and 1x1, with or without a channel axis."""
    with pytest.raises(DlcliError, match=r"block 4 of 4 has a 1x1 feature map before pooling"):
        build_model("cnn", {"filters": [2, 2, 2, 2], "padding": "SAME"}, in_shape, 10, seed=0)
