"""compare-activations: the lecture's activation slides as outcomes, vmapped seeds, maxout, outputs, errors."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcli.cli import app
from dlcli.compare.activations import parse_activations
from dlcli.recipe import load_recipe
from dlcli.report.console import make_reporter

runner = CliRunner()


@pytest.fixture(scope="module")
def deep_comparison(tmp_path_factory):
    """The default deep recipe, shortened: three activations x two seeds, through the CLI with --json.

    All three and their seeds train as one vmapped program (the activation an index per member); maxout,
    whose layers are wider, compiles its own and is compared in the slow test below.
    """
    out = tmp_path_factory.mktemp("compare")
    result = runner.invoke(app, ["compare-activations", "--activations", "relu,elu,sigmoid", "--seeds", "2",
                                 "--set", "train.epochs=15", "--set", "train.checkpoint_seconds=30", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_relu_family_beats_sigmoid_whose_first_layer_gradient_vanishes(deep_comparison):
    rows = {row["activation"]: row for row in deep_comparison["activations"]}
    sigmoid = rows["sigmoid"]
    for name in ("relu", "elu"):
        assert rows[name]["final"]["loss"]["mean"] < 0.5 * sigmoid["final"]["loss"]["mean"]
        assert rows[name]["final"]["val_loss"]["mean"] < sigmoid["final"]["val_loss"]["mean"]
    # At initialisation: the vanishing gradient, orders of magnitude.
    assert sigmoid["first_layer_grad_norm"]["init"] < 1e-2 * rows["relu"]["first_layer_grad_norm"]["init"]
    assert sigmoid["grad_ratio_first_last"]["init"] < 1e-3 < rows["relu"]["grad_ratio_first_last"]["init"]
    # About half of the ReLU units are active at initialisation (the lecture's sparse activation).
    assert 0.35 < rows["relu"]["active_at_init"]["mean"] < 0.65
    assert deep_comparison["ranking"][-1] == "sigmoid"
    assert "sigmoid came last" in deep_comparison["verdict"] and "vanishing gradient" in deep_comparison["verdict"]
    assert "train.checkpoint_seconds is not used" in deep_comparison["notes"][0]  # no setting silently ignored
    # compare --vary model.activation: the three element-wise activations and their seeds, one program.
    assert deep_comparison["groups"] == [{"variants": ["relu", "elu", "sigmoid"], "one_program": True,
                                          "vmapped": "variants and seeds"}]
    assert deep_comparison["compilations"]["train"] == 1


def test_every_activation_and_seed_is_saved_and_plotted(deep_comparison, capsys):
    from pathlib import Path

    from dlcli.compare.plots import load_comparison, write_compare_plots
    from dlcli.compare.table import print_comparison

    run_dir = Path(deep_comparison["run_dir"])
    summary, histories = load_comparison(run_dir)
    assert sorted(histories) == ["elu", "relu", "sigmoid"]
    assert all(sorted(seeds) == [0, 1] and all(len(h) == 15 for h in seeds.values()) for seeds in histories.values())
    assert {"grad_norms", "val_loss", "val_accuracy"} <= set(histories["relu"][0][-1])
    assert {p.name for p in write_compare_plots(run_dir)} == {"val_curves.png", "grad_norms.png", "units.png"}
    assert all((run_dir / "plots" / name).stat().st_size > 10_000 for name in ("val_curves.png", "units.png"))
    print_comparison(run_dir, summary)  # piped: plain text, one line per activation
    text = capsys.readouterr().out
    assert "activation" in text.splitlines()[1] and text.splitlines()[-3].startswith("sigmoid")
    assert "won on compare-deep-mlp" in text


def test_vmapped_seeds_equal_separate_runs(tmp_path):
    """Three seeds in one program == each seed run on its own: seed 0 as a plain `dlcli train`, seed 2 alone."""
    from dlcli.compare.experiment import compare
    from dlcli.compare.grid import Variant
    from dlcli.train.loop import train

    overrides = ["data.source=moons", "model.hidden=[8, 8]", "train.epochs=2", "train.batch_size=50",
                 "evaluate.metrics=[\"accuracy\"]"]
    loaded = load_recipe("compare-deep-mlp", overrides)
    quiet = make_reporter(quiet=True)

    def stack(seeds, out):
        run_dir = compare([Variant("deep", {}, loaded)], loaded, seeds, out, quiet).run_dir
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return {seed: [r for r in records if r["seed"] == seed] for seed in seeds}

    together, alone = stack([0, 1, 2], tmp_path / "together"), stack([2], tmp_path / "alone")[2]
    plain = train(loaded, tmp_path, quiet)  # the recipe's seed is 0
    for member, single in ((together[0], plain.history), (together[2], alone)):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            np.testing.assert_allclose([r[key] for r in member], [r[key] for r in single], rtol=1e-5, atol=1e-6)
    assert together[1][-1]["val_loss"] != together[0][-1]["val_loss"]  # seeds do differ


def test_maxout_has_k_pieces_per_unit_and_trains_in_a_normal_recipe(tmp_path):
    from dlcli.models import build_model
    from dlcli.summary import parameter_count

    model = build_model("mlp", {"hidden": [16, 8], "activation": {"kind": "maxout", "pieces": 3}}, (2,), 1, seed=0)
    # (2 inputs + bias) x 16 units x 3 pieces, (16 + 1) x 8 x 3, then the linear output (8 + 1) x 1.
    assert parameter_count(model) == 3 * 16 * 3 + 17 * 8 * 3 + 9 == 561
    result = runner.invoke(app, ["train", "compare-deep-mlp", "--out", str(tmp_path), "--json",
                                 "--set", "data.source=moons", "--set", "model.hidden=[16, 8]",
                                 "--set", 'model.activation={kind = "maxout", pieces = 3}',
                                 "--set", "train.epochs=20", "--set", "train.batch_size=32"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["parameters"] == 561 and summary["final"]["accuracy"] > 0.85


def test_activation_list_reads_names_and_settings():
    assert parse_activations("relu, leaky_relu(negative_slope=0.1),maxout(pieces=3)") == [
        "relu", {"kind": "leaky_relu", "negative_slope": 0.1}, {"kind": "maxout", "pieces": 3}]


@pytest.mark.parametrize("args,message", [
    (["--activations", "relu,sigmod"], r"unknown activation 'sigmod'\. Did you mean 'sigmoid'\?.*Valid activations: "
                                       r"elu, gelu, .*maxout.*tanh"),
    (["--activations", "maxout(pieces=0)"], "at least 1 linear piece"),
    (["--activations", "relu,relu"], "more than once"),
    (["--seeds", "0"], "at least 1 seed"),
    (["PERCEPTRON"], "model.kind = 'perceptron' has no hidden activation to compare"),
    (["digits-cnn", "--activations", "relu,maxout"], "maxout: this model kind does not give its layers the extra"),
])
def test_user_mistakes_exit_2_with_the_fix(args, message, tmp_path):
    perceptron = tmp_path / "perceptron.toml"
    perceptron.write_text('name = "p"\n[data]\nsource = "xor"\n[model]\nkind = "perceptron"\n')
    args = [str(perceptron) if a == "PERCEPTRON" else a for a in args]
    result = runner.invoke(app, ["compare-activations", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert __import__("re").search(message, " ".join(result.output.split()))


@pytest.mark.slow
def test_default_comparison_shows_what_its_recipe_promises(tmp_path):
    """The full default (the lecture's six x 5 seeds): the numbers the recipe's comment states."""
    result = runner.invoke(app, ["compare-activations", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["activation"]: row for row in json.loads(result.stdout)["activations"]}
    for name in ("relu", "leaky_relu", "elu", "maxout", "tanh"):
        assert rows[name]["final"]["val_accuracy"]["mean"] > 0.95
    assert rows["sigmoid"]["final"]["val_accuracy"]["mean"] < 0.8
    assert rows["sigmoid"]["grad_ratio_first_last"]["init"] < 1e-4
