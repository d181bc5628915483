"""Using a finished run: ``evaluate`` and ``predict`` need nothing but its directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pyarrow as pa

from dlcli.assemble import Assembled, Predictor, assemble
from dlcli.checkpoint import checkpoint_path, load_checkpoint
from dlcli.data import load_data
from dlcli.data.preprocess import Preprocessing
from dlcli.data.spill import SpilledRows
from dlcli.data.dataset import open_dataset
from dlcli.data.tables import peek_columns, read_dataset, read_npz
from dlcli.errors import DlcliError
from dlcli.evaluate import outputs_report
from dlcli.engine.compilation import configure as configure_compilation
from dlcli.engine.executables import folder, traced
from dlcli.files import atomic_path
from dlcli.recipe import LoadedRecipe, Recipe, load_recipe
from dlcli.tasks import task_named
from dlcli.train.step import TrainState


@dataclass
class Run:
    path: Path
    loaded: LoadedRecipe
    preprocessing: Preprocessing
    built: Assembled
    params: Any
    rest: Any

    @property
    def predictor(self) -> Predictor:
        """The run's forward passes, kept across commands (see :func:`dlcli.engine.executables.kept_program`)."""
        kept = (traced(self.loaded.recipe), self.preprocessing) if folder() is not None else None
        return Predictor(self.built.eval_graph, kept=kept)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        return self.predictor(self.params, self.rest, jax.device_put(x))


def open_run(path: Path) -> Run:
    """Rebuild a run's model from its recipe.toml and load its best weights."""
    if not written_by_train(path / "recipe.toml"):
        raise DlcliError(f"'{path}' is not a dlcli run directory: it has no recipe.toml written by `dlcli train`. "
                         "Pass the folder that `dlcli train` printed (runs/<recipe>/<timestamp>).")
    best = path / "checkpoints" / "best"
    if not (path / "preprocessing.json").is_file() or not checkpoint_path(best).is_dir():
        missing = "preprocessing.json" if not (path / "preprocessing.json").is_file() else "checkpoints/best"
        raise DlcliError(f"'{path}' has no trained weights: training stopped before its first checkpoint "
                         f"({missing} is missing). Train the recipe again: dlcli train {path / 'recipe.toml'}.")
    loaded = load_recipe(str(path / "recipe.toml"))
    pre = Preprocessing.load(path / "preprocessing.json")
    configure_compilation()
    built = assemble(loaded.recipe, pre, abstract=True)  # shapes only: the weights come from the checkpoint
    params, rest = load_checkpoint_params(best, built, loaded.recipe)
    return Run(path, loaded, pre, built, params, rest)


def written_by_train(recipe: Path) -> bool:
    """Whether ``recipe`` is the resolved recipe training saves first (not a recipe the user keeps there)."""
    return recipe.is_file() and recipe.read_text(errors="replace").startswith("# resolved from")


def load_checkpoint_params(path: Path, built: Assembled, recipe: Recipe) -> tuple[Any, Any]:
    """The model part (params, rest) of a saved :class:`TrainState`."""
    from dlcli.optim import build_optimizer

    optimizer = build_optimizer(recipe.optimizer, 1)
    like = TrainState(built.params, built.rest, jax.eval_shape(optimizer.init, built.params), np.zeros((), np.int32))
    state = load_checkpoint(path, like)
    return state.params, state.rest


def read_inputs(pre: Preprocessing, file: Path, *, with_target: bool, column_names: list[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray | None, pa.Table | None]:
    """Model inputs (and targets when asked) from a new file, folder of parts or glob, through the run's
    preprocessing.

    ``column_names`` (the recipe's ``data.column_names``) name a file laid out
    like the training file, header-less or not, with or without its target column.
    """
    data = open_dataset(file, "input file")
    fmt = data.format
    if pre.kind == "array":
        if fmt != "npz":
            raise DlcliError(f"{file}: this run was trained on arrays; give an .npz file with an 'x' array.")
        arrays = read_npz(data.files[0])
        y = arrays.get("y")
        task = task_named(pre.task)
        if not task.supervised:  # the inputs are the targets (or all "real")
            x = pre.array_features(arrays["x"], str(file))
            return x, task.targets_from_inputs(x), None
        if with_target and y is None:
            raise DlcliError(f"{file}: no 'y' array of targets to evaluate against.")
        return pre.array_features(arrays["x"], str(file)), (pre.encode_target(y, str(file)) if with_target else None), None
    if fmt == "npz":
        raise DlcliError(f"{file}: this run was trained on a table; give a CSV or Parquet file with columns "
                         f"{', '.join(pre.input_columns)}.")
    table = read_dataset(data, column_names=training_layout(data.files[0], fmt, pre, column_names))
    x = pre.table_features(table, str(file))
    y = None
    if with_target:
        if pre.target not in table.column_names:
            raise DlcliError(f"{file}: missing target column '{pre.target}' needed to evaluate.")
        y = pre.encode_target(table.column(pre.target).to_numpy(zero_copy_only=False), str(file))
    return x, y, table


def training_layout(file: Path, fmt: str, pre: Preprocessing, column_names: list[str] | None) -> list[str] | None:
    """The names to give ``file``'s columns when it lacks the inputs by name but matches the training layout."""
    if not column_names:
        return None
    present = peek_columns(file, fmt)
    if set(pre.input_columns) <= set(present):
        return None
    for names in (column_names, [c for c in column_names if c != pre.target]):
        if len(names) == len(present):
            return names
    return None


def evaluate_run(path: Path, split: str | None = None, data_file: Path | None = None) -> dict[str, Any]:
    """Loss and metrics of a run's best weights on one of its splits or on a new file.

    ``split=None`` takes the split training was judged on: test, else val, else train.
    """
    run = open_run(path)
    if data_file is not None:
        x, y, _ = read_inputs(run.preprocessing, data_file, with_target=True,
                              column_names=run.loaded.recipe.data.column_names)
        source = str(data_file)
    else:
        recipe = run.loaded.recipe
        data = load_data(recipe.data, recipe.seed, run.loaded.resolve_path, task=run.preprocessing.task)
        split = split or next(name for name in ("test", "val", "train") if name in data.splits)
        if split not in data.splits:
            available = ", ".join(sorted(data.splits))
            raise DlcliError(f"This run has no '{split}' split (it has: {available}). Set data.test_split or "
                             "data.test_path when training, or pass --split val / --data FILE.")
        x, y = data.splits[split]
        source = split
    placed = x if isinstance(x, SpilledRows) else jax.device_put(x)  # a streamed split's rows stay on disk
    outputs, losses, predictions = run.predictor.judge(run.built, run.params, run.rest, placed, y)
    if isinstance(x, SpilledRows):
        x.close()
    report = outputs_report(run.built.task, run.built.loss_fn, outputs, y, run.preprocessing.classes, losses,
                            predictions)
    return {"run": str(path), "data": source, **report}


def predict_file(path: Path, input_file: Path) -> pa.Table:
    """Predictions for every row of ``input_file``: class and probabilities, or values."""
    run = open_run(path)
    pre = run.preprocessing
    x, _, table = read_inputs(pre, input_file, with_target=False, column_names=run.loaded.recipe.data.column_names)
    outputs = np.asarray(run.built.task.link(run.outputs(x)))
    columns: dict[str, Any] = {}
    if table is not None and "name" in table.column_names:
        columns["name"] = table.column("name")
    if run.built.task.classifies:
        probabilities = outputs[:, None] if outputs.ndim == 1 else outputs
        if probabilities.shape[1] == 1:
            probabilities = np.concatenate([1 - probabilities, probabilities], axis=1)
        predicted = (outputs > 0.5).astype(int) if outputs.ndim == 1 else probabilities.argmax(axis=1)
        columns["prediction"] = [pre.classes[i] for i in predicted]
        for i, name in enumerate(pre.classes):
            columns[f"p_{name}"] = probabilities[:, i].astype(np.float64)
    else:
        values = outputs.reshape(len(outputs), -1)
        for i in range(values.shape[1]):
            columns["prediction" if values.shape[1] == 1 else f"prediction_{i}"] = values[:, i].astype(np.float64)
    return pa.table(columns)


def write_predictions(table: pa.Table, out: Path | None) -> str | None:
    """Write to ``out`` (.csv or .parquet) or return CSV text for stdout."""
    from pyarrow import csv, parquet

    if out is None:
        sink = pa.BufferOutputStream()
        csv.write_csv(table, sink)
        return sink.getvalue().to_pybytes().decode()
    if out.exists():
        raise DlcliError(f"--out '{out}' already exists; choose a new file name (nothing is overwritten).")
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DlcliError(f"--out '{out}': use a .csv or .parquet file name.")
    if not out.parent.is_dir():
        raise DlcliError(f"--out '{out}': the folder '{out.parent}' does not exist. Create it or choose another path.")
    try:
        with atomic_path(out, overwrite=False) as temporary:  # never a half-written file under the asked name
            (csv.write_csv if suffix == ".csv" else parquet.write_table)(table, str(temporary))
    except FileExistsError:
        raise DlcliError(f"--out '{out}' was created by someone else while predicting; choose a new file name "
                         "(nothing is overwritten).") from None
    except OSError as error:
        raise DlcliError(f"--out '{out}': cannot write it ({error}). Choose a writable path.") from None
    return None
