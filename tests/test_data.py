"""Data reaches the model as the recipe says: batches, files, preprocessing."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import train_recipe
from dlcli.data import load_data
from dlcli.errors import DlcliError
from dlcli.recipe import DataConfig, load_recipe
from dlcli.train.batches import epoch_indices, make_plan


# -- batches -------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 4, 7, 33, 100])
@pytest.mark.parametrize("batch_size", [1, 3, 32, "full"])
@pytest.mark.parametrize("chunks", [1, 4])
def test_every_example_is_used_exactly_once_per_epoch(n, batch_size, chunks):
    plan = make_plan(n, batch_size, chunks)
    size = n if batch_size == "full" else min(batch_size, n)
    assert plan.batch_size == size and plan.steps == -(-n // size)  # a partial last batch is a step of its own
    for epoch in (1, 2):
        idx, weight = epoch_indices(n, plan, seed=0, epoch=epoch)
        assert idx.shape == weight.shape == (plan.chunks, plan.steps_per_chunk, size)
        used = idx[weight == 1]
        assert sorted(used.tolist()) == list(range(n))  # none dropped, none repeated
        steps = weight.reshape(-1, size)
        assert (steps[:plan.steps].sum(axis=1) > 0).all()  # every real step has examples
        assert (steps[plan.steps:] == 0).all()  # padding steps (to fill the last chunk) are empty
        real = steps[:plan.steps].sum(axis=1)
        assert (real[:-1] == size).all() and real[-1] == n - size * (plan.steps - 1)


def test_shuffling_is_seeded_per_epoch():
    plan = make_plan(50, 8, 2)
    first, _ = epoch_indices(50, plan, seed=0, epoch=1)
    again, _ = epoch_indices(50, plan, seed=0, epoch=1)
    second, _ = epoch_indices(50, plan, seed=0, epoch=2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("batch_size, steps", [(1, 4), (3, 2), ("full", 1)])
def test_stochastic_minibatch_and_full_batch_gradient_descent_all_train(tmp_path, batch_size, steps):
    log = io.StringIO()
    value = f'"{batch_size}"' if batch_size == "full" else batch_size
    result = train_recipe("mlp-xor", tmp_path, f"train.batch_size={value}", "train.epochs=30", stream=log)
    assert f"{steps} steps/epoch" in log.getvalue()
    assert result.history[-1]["loss"] < 0.8 * result.history[0]["loss"]


# -- the course's feature engineering -------------------------------------------

def test_gender_inputs_are_weight_minus_135_height_minus_66_and_f_is_1():
    loaded = load_recipe("gender")
    data = load_data(loaded.recipe.data, loaded.recipe.seed, loaded.resolve_path)
    x, y = data.splits["train"]
    rows = {tuple(row): label for row, label in zip(x.tolist(), y.tolist())}
    assert rows == {(-2.0, -1.0): 1, (25.0, 6.0): 0, (17.0, 4.0): 0, (-15.0, -6.0): 1}  # the slide's table
    assert data.preprocessing.classes == ["M", "F"]


def test_standardisation_uses_the_training_split_only():
    config = DataConfig(source="moons", validation_split=0.3, standardize=True)
    data = load_data(config, seed=0, resolve=Path)
    x_train, x_val = data.splits["train"][0], data.splits["val"][0]
    np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(axis=0), 1.0, atol=1e-4)
    assert np.abs(x_val.mean(axis=0)).max() > 1e-4  # the validation split did not contribute
    again = load_data(config, seed=0, resolve=Path)
    np.testing.assert_array_equal(again.splits["val"][0], x_val)  # the split is seeded


# -- files -----------------------------------------------------------------------

ROWS = [(1, 0.5, 2.0), (0, -0.5, 1.0), (1, 0.25, 3.0), (0, -1.5, 0.5)]


def write_csv(path: Path, header: bool) -> Path:
    text = ("label,a,b\n" if header else "") + "".join(f"{l},{a},{b}\n" for l, a, b in ROWS)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as file:
            file.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name, header", [("plain.csv", False), ("named.csv", True), ("packed.csv.gz", False)])
def test_column_names_read_files_with_or_without_a_header(tmp_path, name, header):
    path = write_csv(tmp_path / name, header)
    config = DataConfig(source="csv", path=str(path), target="y", column_names=["y", "f1", "f2"],
                        validation_split=0.0)
    data = load_data(config, seed=0, resolve=Path)
    x, y = data.splits["train"]
    assert len(x) == len(ROWS)  # a header row is neither lost data nor read as data
    assert data.preprocessing.input_columns == ["f1", "f2"]
    assert sorted(x[:, 1].tolist()) == sorted(b for _, _, b in ROWS)


def test_declared_format_contradicting_the_suffix_is_named(tmp_path):
    path = write_csv(tmp_path / "data.csv", header=True)
    config = DataConfig(source="parquet", path=str(path), target="label")
    with pytest.raises(DlcliError, match=r"looks like a CSV file but data.source = 'parquet'.*data.source=csv"):
        load_data(config, seed=0, resolve=Path)


def test_column_names_count_must_match_the_file(tmp_path):
    path = write_csv(tmp_path / "data.csv", header=False)
    config = DataConfig(source="csv", path=str(path), target="y", column_names=["y", "f1"])
    with pytest.raises(DlcliError, match="gives 2 names but .* has 3 columns"):
        load_data(config, seed=0, resolve=Path)


def test_preprocessing_is_saved_with_the_run(binary_run):
    saved = json.loads((binary_run.run_dir / "preprocessing.json").read_text())
    assert saved["input_columns"] == ["x1", "x2"] and saved["target"] == "label"
    assert saved["mean"][0] == pytest.approx(170.0, abs=10.0)  # fitted on the raw values (x1 * 40 + 150)


def test_npz_whose_x_and_y_lengths_differ_is_named(tmp_path):
    path = tmp_path / "unequal.npz"
    np.savez(path, x=np.zeros((10, 3), np.float32), y=np.zeros(7, np.int64))
    recipe = tmp_path / "unequal.toml"
    recipe.write_text('name = "unequal"\n[data]\nsource = "npz"\npath = "unequal.npz"\n[model]\nkind = "mlp"\n')
    with pytest.raises(DlcliError, match=r"unequal\.npz: x has 10 examples but y has 7"):
        load_data(load_recipe(str(recipe)).recipe.data, 0, load_recipe(str(recipe)).resolve_path)


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_a_csv_separated_otherwise_than_by_commas_is_read_by_its_header(tmp_path, separator):
    path = tmp_path / "data.csv"
    path.write_text(separator.join(["a", "b", "label"]) + "\n"
                    + "".join(separator.join(map(str, (a, b, l))) + "\n" for l, a, b in ROWS))
    data = load_data(DataConfig(source="csv", path=str(path), target="label", validation_split=0.0), 0, Path)
    assert data.preprocessing.input_columns == ["a", "b"]
    np.testing.assert_array_equal(sorted(data.splits["train"][0][:, 1]), sorted(b for _, _, b in ROWS))


def test_data_delimiter_overrides_the_guess_and_applies_to_csv_only(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a:b;c:label\n" + "".join(f"{a}:{b}:{l}\n" for l, a, b in ROWS))  # the header suggests ;
    data = load_data(DataConfig(source="csv", path=str(path), target="label", delimiter=":", validation_split=0.0),
                     0, Path)
    assert data.preprocessing.input_columns == ["a", "b;c"]
    with pytest.raises(DlcliError, match="data.delimiter = ';' applies to CSV files.*Remove data.delimiter"):
        load_data(DataConfig(source="moons", delimiter=";"), 0, Path)


# -- data that leaves nothing to learn -------------------------------------------------

def assert_csv_refused(folder: Path, text: str, match: str) -> None:
    """Reading a CSV file of ``text`` with target 'label' stops with a message matching ``match``."""
    path = folder / "data.csv"
    path.write_text(text)
    with pytest.raises(DlcliError, match=match):
        load_data(DataConfig(source="csv", path=str(path), target="label"), 0, Path)


def test_a_csv_of_the_target_alone_names_the_file_and_what_to_do(tmp_path):
    assert_csv_refused(tmp_path, "label\n" + "".join(f"{l}\n" for l, _, _ in ROWS),
                       r"data.path '.*data.csv': the file has no column to learn from, only the target 'label'.*"
                       r"data.delimiter")


def test_dropping_every_row_names_the_columns_that_emptied_the_table(tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("a,b,c,label\n" + "".join(f"{'' if i % 2 else 1},{'' if i % 2 == 0 else 2},3,{i % 2}\n"
                                              for i in range(6)))
    config = DataConfig(source="csv", path=str(path), target="label", missing="drop")
    with pytest.raises(DlcliError) as raised:
        load_data(config, 0, Path)
    message = str(raised.value)
    assert "dropped all 6 rows" in message and "'a' (3 rows), 'b' (3 rows)" in message and "'c'" not in message
    assert 'data.missing = "mean"' in message and "validation_split" not in message
    mean = load_data(config.model_copy(update={"missing": "mean", "validation_split": 0.0}), 0, Path)
    assert len(mean.splits["train"][0]) == 6  # filling instead of dropping trains on every row


def test_training_targets_of_one_class_name_the_target_and_the_way_out(tmp_path):
    assert_csv_refused(tmp_path, "a,label\n" + "".join(f"{i},1\n" for i in range(8)),
                       r"data.target 'label': the training split holds one class only \('1'\).*task = \"regression\"")


def test_constant_empty_and_categorical_columns_train_to_a_finite_loss(tmp_path):
    """Columns that carry little (constant, empty, filled) still make a run that learns from the rest."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=60)
    lines = [f"{s:.3f},7,,{'yes' if s > 0 else 'no'},{rng.choice(['a', 'b', ''])},{int(s > 0)}" for s in signal]
    (tmp_path / "awkward.csv").write_text("signal,constant,empty,flag,colour,label\n" + "\n".join(lines) + "\n")
    (tmp_path / "awkward.toml").write_text(
        'name = "awkward"\n[data]\nsource = "csv"\npath = "awkward.csv"\ntarget = "label"\nstandardize = true\n'
        'missing = "mean"\none_hot = ["flag", "colour"]\n[model]\nkind = "mlp"\nhidden = [8]\n'
        '[optimizer]\nlearning_rate = 0.05\n[train]\nepochs = 15\nbatch_size = 16\n')
    result = train_recipe(str(tmp_path / "awkward.toml"), tmp_path / "runs")
    assert all(np.isfinite(r["loss"]) for r in result.history)
    assert result.history[-1]["loss"] < 0.7 * result.history[0]["loss"]
    assert result.summary["final"]["accuracy"] >= 0.75


def test_numbers_with_a_decimal_comma_are_named_with_the_fix(tmp_path):
    assert_csv_refused(tmp_path, "a;b;label\n" + "".join(f"{i},5;{i};{i % 2}\n" for i in range(6)),
                       r"column 'a' holds numbers written with a decimal comma \(like '\d,5'\).*decimal points")


# -- bundled data sets ------------------------------------------------------------

def sklearn_raw(name: str, seed: int, options: dict):
    """What the bundled data set was when it came from ``sklearn.datasets``."""
    import sklearn.datasets as sk

    from dlcli.data.bundled import _points
    from dlcli.data.shipped import table_of

    if name in ("moons", "circles"):
        make = sk.make_moons if name == "moons" else sk.make_circles
        defaults = {"noise": 0.2} if name == "moons" else {"noise": 0.1, "factor": 0.5}  # dlcli's, as before
        settings = {**defaults, **options}
        x, y = make(settings.pop("samples", 1000), random_state=seed, **settings)
        return _points(x.astype(np.float32), y)
    bunch = getattr(sk, f"load_{name}")()
    if name == "digits":
        return None, (bunch.images / 16.0).astype(np.float32)[..., None], bunch.target.astype(np.int64)
    classes = None if name == "diabetes" else [str(n) for n in bunch.target_names]
    return table_of(bunch.data, bunch.target, list(bunch.feature_names), classes)


@pytest.mark.parametrize("name, seed, options", [
    ("iris", 0, {}), ("wine", 0, {}), ("breast_cancer", 0, {}), ("diabetes", 0, {}), ("digits", 0, {}),
    ("moons", 0, {}), ("moons", 7, {"samples": 301, "noise": 0.0}), ("moons", 42, {"noise": 0.35}),
    ("circles", 0, {}), ("circles", 3, {"samples": 99, "noise": 0.05, "factor": 0.3}),
])
def test_bundled_data_sets_are_exactly_what_sklearn_gives_without_importing_it(name, seed, options):
    from dlcli.data.bundled import DATASETS

    ours = DATASETS.get(name)(seed, **options)
    theirs = sklearn_raw(name, seed, dict(options))
    if name == "digits":
        np.testing.assert_array_equal(ours.x, theirs[1])
        np.testing.assert_array_equal(ours.y, theirs[2])
        assert ours.x.dtype == theirs[1].dtype and ours.y.dtype == theirs[2].dtype
        return
    assert ours.table.equals(theirs.table) and ours.table.schema == theirs.table.schema
    assert (ours.target, ours.classes) == (theirs.target, theirs.classes)


def test_bundled_tabular_data_sets_load_without_sklearn_datasets():
    import subprocess
    import sys

    code = ("import sys; from dlcli.data.bundled import DATASETS\n"
            "for name in ('iris', 'wine', 'breast_cancer', 'diabetes', 'digits', 'moons', 'circles'): "
            "DATASETS.get(name)(0)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('sklearn', 'scipy'))))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[]"
