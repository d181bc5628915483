"""Fuzzing: hundreds of broken recipes and data files, each must end in exit 2 with a message that says where.

Each example writes a recipe (and its data) that is wrong in one way, runs
``dlcli train`` on it through Typer's CliRunner, and checks: exit code 2,
a one-paragraph ``error:`` message naming the key, file or column at fault,
and no traceback. Training itself is replaced by a tripwire: a broken recipe
must be caught while loading and assembling, before any step runs. The
default run tries ``FAST`` examples (about 15 s); ``-m slow`` tries ``MANY``.
"""

from __future__ import annotations

import io
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import dlcli.train.loop
from dlcli.cli import app
from dlcli.recipe import dump_toml

FAST, MANY = 500, 4000
TRIED: Counter = Counter()

ROWS = 24
COLUMNS = ["a", "b", "c"]


@dataclass
class Case:
    """One broken recipe: how to change the base, which files to write, what the message must name."""

    kind: str
    source: str  # csv | parquet | npz
    edit: Callable[[dict], None] = lambda raw: None
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)
    where: tuple[str, ...] = ()
    recipe_bytes: Callable[[bytes], bytes] | None = None


def table() -> pa.Table:
    rng = np.random.default_rng(0)
    values = {name: rng.normal(size=ROWS).round(3) for name in COLUMNS}
    return pa.table({**values, "label": np.arange(ROWS) % 2})


def csv_text(t: pa.Table) -> bytes:
    from pyarrow import csv

    sink = io.BytesIO()
    csv.write_csv(t, sink)
    return sink.getvalue()


def parquet_bytes(t: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(t, sink)
    return sink.getvalue()


def npz_writer(**arrays: np.ndarray) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(handle, **arrays)

    return write


def bytes_writer(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def base_recipe(source: str) -> dict[str, Any]:
    data: dict[str, Any] = {"source": source, "path": f"data.{source}"}
    if source != "npz":
        data["target"] = "label"
    return {"name": "fuzz", "seed": 0, "data": data, "model": {"kind": "mlp", "hidden": [4]},
            "optimizer": {"kind": "adam", "learning_rate": 0.01}, "train": {"epochs": 1, "batch_size": 8}}


def base_files(source: str) -> dict[str, Callable[[Path], None]]:
    if source == "csv":
        return {"data.csv": bytes_writer(csv_text(table()))}
    if source == "parquet":
        return {"data.parquet": bytes_writer(parquet_bytes(table()))}
    rng = np.random.default_rng(0)
    return {"data.npz": npz_writer(x=rng.normal(size=(ROWS, 4, 4, 1)).astype(np.float32), y=np.arange(ROWS) % 3)}


def put(raw: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


# -- strategies --------------------------------------------------------------------------------------------------
sources = st.sampled_from(["csv", "parquet", "npz"])
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(lambda w: w[0] != "_")
# Values pydantic never coerces into a number, string, list or bool.
never_scalar = st.one_of(st.dictionaries(words, st.integers(), min_size=1, max_size=2),
                         st.lists(st.dictionaries(words, st.integers(), min_size=1, max_size=1), min_size=1, max_size=2))

TYPED_KEYS = ["seed", "name", "description", "task", "data.source", "data.path", "data.validation_split",
              "data.test_split", "data.standardize", "data.features", "data.limit", "data.missing", "model.kind",
              "model.hidden", "model.activation", "model.dropout", "model.batch_norm", "optimizer.learning_rate",
              "optimizer.kind", "optimizer.clip_global_norm", "optimizer.weight_decay", "train.epochs",
              "train.batch_size", "train.l1", "train.l2", "train.chunks_per_epoch", "train.checkpoint_seconds",
              "train.early_stopping.patience", "train.early_stopping.monitor", "evaluate.metrics"]


@st.composite
def wrong_types(draw) -> Case:
    key, value = draw(st.sampled_from(TYPED_KEYS)), draw(never_scalar)
    return Case("wrong type", draw(sources), lambda raw: put(raw, key, value), where=(key.split(".")[-1],))


SECTIONS = {"": ["name", "description", "seed", "task", "data", "model", "loss", "optimizer", "train", "evaluate"],
            "data": ["source", "path", "target", "features", "column_names", "validation_split", "test_split",
                     "val_path", "test_path", "standardize", "offsets", "scales", "label_map", "one_hot", "missing",
                     "limit", "options"],
            "model": ["kind", "hidden", "activation", "dropout", "batch_norm"],
            "optimizer": ["kind", "learning_rate", "b1", "b2", "eps", "schedule", "clip_global_norm", "weight_decay",
                          "reduce_on_plateau"],
            "train": ["epochs", "batch_size", "chunks_per_epoch", "early_stopping", "l1", "l2", "checkpoint_seconds",
                      "augment"],
            "evaluate": ["metrics"], "train.early_stopping": ["monitor", "mode", "patience", "min_delta"],
            "optimizer.reduce_on_plateau": ["factor", "patience", "min_delta", "cooldown", "min_scale"]}


@st.composite
def unknown_keys(draw) -> Case:
    section = draw(st.sampled_from(sorted(SECTIONS)))
    key = draw(words.filter(lambda w: w not in SECTIONS[section]))
    path = f"{section}.{key}" if section else key
    return Case("unknown key", draw(sources), lambda raw: put(raw, path, 1), where=(key,))


NAMED = {"model.kind": "model", "loss.kind": "loss", "optimizer.kind": "optimizer", "data.source": "data.source",
         "model.activation": "activation", "optimizer.schedule": "schedule", "train.early_stopping.monitor": "monitor",
         "evaluate.metrics": "metric", "train.augment": "augment"}
def valid_names() -> set[str]:
    """Every name some registry or metric answers to: a fuzzed name must be none of them."""
    from dlcli.activations import ACTIVATIONS
    from dlcli.data.augment import AUGMENTATIONS
    from dlcli.data.bundled import DATASETS
    from dlcli.losses import LOSSES
    from dlcli.models import MODELS
    from dlcli.optim import OPTIMIZERS, SCHEDULES
    from dlcli.tasks import TASKS

    names = {"csv", "parquet", "npz", "loss"} | {m for t in TASKS.names() for m in TASKS.get(t).metric_names}
    for registry in (ACTIVATIONS, AUGMENTATIONS, DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULES):
        names |= set(registry.names())
    return names | {f"val_{n}" for n in names}


VALID_NAMES = valid_names()


@st.composite
def unknown_names(draw) -> Case:
    key = draw(st.sampled_from(sorted(NAMED)))
    name = draw(words.filter(lambda w: w not in VALID_NAMES))

    def edit(raw: dict) -> None:
        if key == "optimizer.schedule":
            put(raw, key, {"kind": name})
        elif key == "evaluate.metrics":
            put(raw, key, [name])
        elif key == "train.augment":
            put(raw, key, {name: True})
        elif key == "loss.kind":
            raw["loss"] = {"kind": name}
        else:
            put(raw, key, name)

    return Case("unknown name", draw(sources), edit, where=(name, NAMED[key]))


def below(limit: float) -> st.SearchStrategy:
    return st.floats(max_value=limit, exclude_max=True, allow_nan=False, allow_infinity=False, width=32)


NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
OUT_OF_RANGE: dict[str, st.SearchStrategy] = {
    "data.validation_split": st.one_of(below(0.0), st.floats(min_value=1.0, max_value=1e9), NOT_FINITE),
    "data.test_split": st.one_of(below(0.0), st.floats(min_value=1.0, max_value=1e9)),
    "data.limit": st.integers(max_value=0, min_value=-2**40),
    "seed": st.one_of(st.integers(max_value=-1, min_value=-2**40), st.integers(min_value=2**32, max_value=2**62)),
    "train.epochs": st.one_of(st.integers(max_value=0, min_value=-2**40), st.integers(min_value=10**6 + 1, max_value=2**62)),
    "train.batch_size": st.integers(max_value=0, min_value=-2**40),
    "train.chunks_per_epoch": st.integers(max_value=0, min_value=-2**40),
    "train.l1": st.one_of(below(0.0), NOT_FINITE),
    "train.l2": st.one_of(below(0.0), NOT_FINITE),
    "train.checkpoint_seconds": st.one_of(below(0.0), NOT_FINITE),
    "train.early_stopping.patience": st.integers(max_value=-1, min_value=-2**40),
    "train.early_stopping.min_delta": st.one_of(below(0.0), NOT_FINITE),
    "optimizer.learning_rate": st.one_of(below(0.0), st.just(0.0), NOT_FINITE),
    "optimizer.clip_global_norm": st.one_of(below(0.0), NOT_FINITE),
    "optimizer.weight_decay": st.one_of(below(0.0), NOT_FINITE),
    "optimizer.reduce_on_plateau.factor": st.one_of(below(0.0), st.floats(min_value=1.0, max_value=1e6), NOT_FINITE),
    "model.dropout": st.one_of(below(0.0), st.floats(min_value=1.0, max_value=1e6), NOT_FINITE),
    "model.hidden": st.lists(st.integers(max_value=0, min_value=-1000), min_size=1, max_size=3),
}
AUGMENT_RANGES = {"noise": ("std", below(0.0)), "rotate": ("degrees", st.floats(min_value=180.5, max_value=1e6)),
                  "crop": ("padding", st.integers(max_value=-1, min_value=-100)),
                  "translate": ("fraction", st.floats(min_value=1.01, max_value=100.0)),
                  "flip_horizontal": ("probability", st.floats(min_value=1.01, max_value=100.0))}


@st.composite
def out_of_range(draw) -> Case:
    if draw(st.booleans()) and draw(st.booleans()):  # a quarter: augmentation settings on image data
        name = draw(st.sampled_from(sorted(AUGMENT_RANGES)))
        setting, values = AUGMENT_RANGES[name]
        value = draw(values)
        return Case("out of range", "npz", lambda raw: put(raw, f"train.augment.{name}", {setting: value}),
                    where=(setting,))
    key = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
    value = draw(OUT_OF_RANGE[key])
    return Case("out of range", draw(sources), lambda raw: put(raw, key, value), where=(key.split(".")[-1],))


@st.composite
def broken_data(draw) -> Case:
    source = draw(sources)
    file = f"data.{source}"
    problem = draw(st.sampled_from(["empty", "random bytes", "missing file", "non-finite", "truncated",
                                    "non-utf8", "wrong shape"]))
    if problem == "missing file":
        name = draw(words) + "." + source
        return Case(problem, source, lambda raw: put(raw, "data.path", name), where=(name,))
    if problem == "random bytes":
        blob = draw(st.binary(min_size=1, max_size=300))
        if source == "npz":
            blob = b"PK\x03\x04" + blob
        elif source == "csv":
            blob = b"\xff" + blob  # never UTF-8, whatever follows
        return Case(problem, source, files={file: bytes_writer(blob)}, where=(file,))
    if source == "npz":
        return npz_problem(draw, problem)
    t = table()
    if problem == "empty":
        blob = b"" if draw(st.booleans()) or source == "parquet" else csv_text(t.slice(0, 0))
        return Case(problem, source, files={file: bytes_writer(blob)}, where=(file,))
    if problem == "non-finite":
        column = draw(st.sampled_from(COLUMNS))
        row = draw(st.integers(0, ROWS - 1))
        values = t.column(column).to_numpy().copy()
        values[row] = draw(NOT_FINITE)
        broken = t.set_column(t.schema.get_field_index(column), column, pa.array(values))
        blob = csv_text(broken) if source == "csv" else parquet_bytes(broken)
        return Case(problem, source, files={file: bytes_writer(blob)}, where=(column,))
    if problem == "truncated" or source == "parquet":  # parquet: cut anywhere before the footer's end
        blob = parquet_bytes(t) if source == "parquet" else csv_text(t)
        cut = draw(st.integers(0, len(blob) - 1))
        if source == "csv":  # a CSV cut mid-row is ragged; cut after a complete row of the header only
            blob = blob[:blob.index(b"\n") + 1]
        return Case(problem, source, files={file: bytes_writer(blob[:cut] if source == "parquet" else blob)},
                    where=(file,))
    text = csv_text(t)
    if problem == "non-utf8":
        at = draw(st.integers(0, len(text) - 1))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80"]))
        return Case(problem, source, files={file: bytes_writer(text[:at] + bad + text[at:])},
                    where=(file, *COLUMNS, "label"))
    # wrong shape: a ragged row
    lines = text.splitlines(keepends=True)
    row = draw(st.integers(1, len(lines) - 1))
    lines[row] = lines[row].rstrip(b"\n") + draw(st.sampled_from([b",1", b",1,2"])) + b"\n"
    return Case(problem, source, files={file: bytes_writer(b"".join(lines))}, where=(file,))


def npz_problem(draw, problem: str) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    x = rng.normal(size=(ROWS, 3)).astype(np.float32)
    y = np.arange(ROWS) % 2
    where: tuple[str, ...] = ("x", "y", "data.npz")
    if problem == "empty":
        arrays = dict(x=x[:0], y=y[:0])
    elif problem in ("non-finite", "non-utf8"):
        x[draw(st.integers(0, ROWS - 1)), draw(st.integers(0, 2))] = draw(NOT_FINITE)
        arrays = dict(x=x, y=y)
    elif problem == "truncated":
        arrays = dict(x=x, y=y[: draw(st.integers(0, ROWS - 1))])
    else:  # wrong shape
        arrays = draw(st.sampled_from([dict(x=x[0, 0], y=y[0]), dict(x=x.reshape(ROWS, 3, 1)[:, :0], y=y),
                                       dict(x=x, y=y[:-1]), dict(y=y), dict(x=x),
                                       dict(x=x.astype(str), y=y), dict(x=x.astype(complex), y=y)]))
    return Case(problem, "npz", files={"data.npz": npz_writer(**arrays)}, where=where)


@st.composite
def non_utf8_recipes(draw) -> Case:
    bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xa0\xa1", b"\xed\xa0\x80"]))
    at = draw(st.integers(0, 10_000))

    def corrupt(text: bytes) -> bytes:
        i = at % (len(text) + 1)
        return text[:i] + bad + text[i:]

    return Case("non-UTF-8 recipe", draw(sources), recipe_bytes=corrupt, where=("recipe.toml",))


broken_cases = st.one_of(wrong_types(), unknown_keys(), unknown_names(), out_of_range(), broken_data(), broken_data(),
                         non_utf8_recipes())


# -- the check -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    def tripwire(*args, **kwargs):
        raise AssertionError("a broken recipe reached training")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dlcli.train.loop, "fit", tripwire)
        yield tmp_path_factory.mktemp("fuzz")
    print(f"\nfuzz examples tried: {sum(TRIED.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(TRIED.items()))})")


def check(case: Case, root: Path) -> None:
    TRIED[case.kind] += 1
    folder = root / uuid.uuid4().hex[:12]
    folder.mkdir()
    for name, write in {**base_files(case.source), **case.files}.items():
        write(folder / name)
    raw = base_recipe(case.source)
    case.edit(raw)
    text = dump_toml(raw).encode()
    recipe = folder / "recipe.toml"
    recipe.write_bytes(case.recipe_bytes(text) if case.recipe_bytes else text)
    result = CliRunner().invoke(app, ["train", str(recipe), "--out", str(folder / "runs")])
    output = result.output
    assert result.exit_code == 2, f"{case.kind}: exit {result.exit_code}\n{output}\n{result.exception!r}"
    assert output.startswith("error: ") and "Traceback" not in output, output
    assert any(token in output for token in case.where), f"{case.kind}: names none of {case.where}: {output}"
    assert not list((folder / "runs").glob("*/*")), "a run directory was created for a broken recipe"


SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=FAST, **SETTINGS)
@given(case=broken_cases)
def test_broken_recipes_exit_2_and_say_where(workdir: Path, case: Case):
    check(case, workdir)


@pytest.mark.slow
@settings(max_examples=MANY, **SETTINGS)
@given(case=broken_cases)
def test_many_more_broken_recipes(workdir: Path, case: Case):
    check(case, workdir)


def test_the_base_recipes_are_sound(tmp_path: Path):
    """The fuzzer's starting points are valid: only the injected fault makes them fail."""
    from dlcli.recipe import load_recipe
    from dlcli.train.setup import prepare

    for source in ("csv", "parquet", "npz"):
        folder = tmp_path / source
        folder.mkdir()
        for name, write in base_files(source).items():
            write(folder / name)
        (folder / "recipe.toml").write_text(dump_toml(base_recipe(source)))
        setup = prepare(load_recipe(str(folder / "recipe.toml")))
        assert len(setup.data.splits["train"][0]) > 0


# -- tables that leave little or nothing to learn ------------------------------------------------------------------
# Valid recipes over data of awkward shapes: no feature columns, constant or empty columns, one class, rows that
# missing-value handling or the splits remove. Each must either give a training set a model can learn from, or
# stop with a message naming the column, file or setting to change.
SHAPED_FAST, SHAPED_MANY = 40, 1200
FEATURE_KINDS = ["numbers", "constant", "integers", "all missing", "some missing", "text", "booleans"]
TARGET_KINDS = ["two classes", "one class", "many classes", "real values", "constant real", "text labels",
                "some missing", "all missing"]


def with_holes(values: np.ndarray, rng: np.random.Generator) -> pa.Array:
    holes = rng.random(len(values)) < 0.3
    holes[rng.integers(len(values))] = True
    return pa.array(values, mask=holes)


def feature_column(kind: str, rows: int, rng: np.random.Generator) -> pa.Array:
    if kind == "constant":
        return pa.array(np.full(rows, 3.5))
    if kind == "integers":
        return pa.array(rng.integers(0, 5, rows))
    if kind == "all missing":
        return pa.nulls(rows, pa.float64())
    if kind == "some missing":
        return with_holes(rng.normal(size=rows).round(3), rng)
    if kind == "text":
        return pa.array(rng.choice(["red", "green", "blue"], rows))
    if kind == "booleans":
        return pa.array(rng.random(rows) < 0.5)
    return pa.array(rng.normal(size=rows).round(3))


def target_column(kind: str, rows: int, rng: np.random.Generator) -> pa.Array:
    labels = np.arange(rows) % 2
    if kind == "one class":
        return pa.array(np.ones(rows, np.int64))
    if kind == "many classes":
        return pa.array(rng.integers(0, 5, rows))
    if kind == "real values":
        return pa.array(rng.normal(size=rows).round(3) + 0.5)
    if kind == "constant real":
        return pa.array(np.full(rows, 2.5))
    if kind == "text labels":
        return pa.array(np.where(labels == 1, "signal", "background"))
    if kind == "some missing":
        return with_holes(labels.astype(np.float64), rng)
    if kind == "all missing":
        return pa.nulls(rows, pa.float64())
    return pa.array(labels)


@dataclass
class Shaped:
    """A table of an awkward shape, the file format it is saved in, and the recipe's [data] settings."""

    table: pa.Table
    source: str
    data: dict[str, Any]


@st.composite
def shaped_tables(draw) -> Shaped:
    rows = draw(st.integers(1, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kinds = draw(st.lists(st.sampled_from(FEATURE_KINDS), max_size=4))
    columns = {f"f{i}_{kind.replace(' ', '_')}": feature_column(kind, rows, rng) for i, kind in enumerate(kinds)}
    columns["label"] = target_column(draw(st.sampled_from(TARGET_KINDS)), rows, rng)
    data = {"missing": draw(st.sampled_from(["error", "drop", "mean", "median"])),
            "standardize": draw(st.booleans()),
            "validation_split": draw(st.sampled_from([0.0, 0.2, 0.5])),
            "test_split": draw(st.sampled_from([0.0, 0.25]))}
    text = [name for name in columns if "_text" in name]
    if text and draw(st.booleans()):
        data["one_hot"] = text
    if rows > 2 and draw(st.booleans()):
        data["limit"] = draw(st.integers(1, rows))
    return Shaped(pa.table(columns), draw(st.sampled_from(["csv", "parquet"])), data)


def check_shaped(case: Shaped, root: Path) -> None:
    """Either a training set a model can learn from, or a DlcliError naming a column, the file or a setting."""
    from dlcli.assemble import Predictor
    from dlcli.errors import DlcliError
    from dlcli.evaluate import outputs_report
    from dlcli.recipe import load_recipe
    from dlcli.train.setup import prepare

    folder = root / uuid.uuid4().hex[:12]
    folder.mkdir()
    file = folder / f"data.{case.source}"
    file.write_bytes(csv_text(case.table) if case.source == "csv" else parquet_bytes(case.table))
    raw = base_recipe(case.source)
    raw["data"].update(case.data)
    (folder / "recipe.toml").write_text(dump_toml(raw))
    try:
        setup = prepare(load_recipe(str(folder / "recipe.toml")))
    except DlcliError as error:
        TRIED["shaped table: exit 2"] += 1
        message = str(error)
        names = [f"'{c}'" for c in case.table.column_names] + ["data.", "task"]
        assert any(name in message for name in names), f"{case.data}: names no column or setting: {message}"
        return
    TRIED["shaped table: trains"] += 1
    x, y = setup.data.splits["train"]
    assert x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] >= 1, f"{case.data}: training inputs {x.shape}"
    assert np.isfinite(x).all(), f"{case.data}: non-finite training inputs"
    if setup.built.task.kind == "classification":
        assert len(np.unique(y)) >= 2, f"{case.data}: a classifier with one training class"
    else:
        assert np.isfinite(y).all()
    predictor = Predictor(setup.built.eval_graph)
    for split, (inputs, targets) in setup.data.splits.items():  # what every epoch's evaluation computes
        report = outputs_report(setup.built.task, setup.built.loss_fn,
                                predictor(setup.built.params, setup.built.rest, inputs), targets,
                                setup.data.preprocessing.classes)
        assert math.isfinite(report["loss"]) and report["examples"] == len(targets) >= 1, f"{split}: {report}"


@settings(max_examples=SHAPED_FAST, **SETTINGS)
@given(case=shaped_tables())
def test_awkward_tables_train_or_name_what_to_change(workdir: Path, case: Shaped):
    check_shaped(case, workdir)


@pytest.mark.slow
@settings(max_examples=SHAPED_MANY, **SETTINGS)
@given(case=shaped_tables())
def test_many_more_awkward_tables(workdir: Path, case: Shaped):
    check_shaped(case, workdir)
