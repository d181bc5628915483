"""Data sets of many files: Spark folders, Hive partitions and globs read like the one file they make up."""

from __future__ import annotations

import dataclasses
import gzip
import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import dlcli.data
from conftest import higgs_columns, higgs_like, train_recipe
from dlcli.cli import app
from dlcli.data import load_data
from dlcli.recipe import load_recipe

ROWS = 1200


def higgs_table(rows: int = ROWS) -> pa.Table:
    x, y = higgs_like(rows, seed=5)
    names = higgs_columns()
    return pa.table({names[0]: y, **{name: x[:, i] for i, name in enumerate(names[1:])}})


def write_spark_folder(folder: Path, table: pa.Table, parts: int = 3) -> Path:
    """The table as Spark writes it: part files of several row groups, _SUCCESS, hidden .crc checksums."""
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").write_bytes(b"")
    job = uuid.uuid4()
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for i, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        name = f"part-{i:05d}-{job}-c000.snappy.parquet"
        pq.write_table(table.slice(start, end - start), folder / name, row_group_size=150)
        (folder / f".{name}.crc").write_bytes(b"\x00crc")
    return folder


@pytest.fixture(scope="module")
def higgs_files(tmp_path_factory) -> tuple[Path, Path]:
    """(one Parquet file, a Spark folder of 3 parts holding the same rows)."""
    root = tmp_path_factory.mktemp("datasets")
    table = higgs_table()
    pq.write_table(table, root / "higgs.parquet")
    return root / "higgs.parquet", write_spark_folder(root / "higgs-spark", table)


def train_higgs(out: Path, path: Path, *overrides: str) -> dict:
    return train_recipe("higgs-mlp", out, f"data.path='{path}'", "train.epochs=1", *overrides).summary


def test_a_spark_folder_trains_to_the_same_metrics_as_its_single_file(tmp_path, higgs_files):
    file, folder = higgs_files
    assert train_higgs(tmp_path / "file", file)["final"] == train_higgs(tmp_path / "folder", folder)["final"]


@pytest.mark.parametrize("overrides", [[], ["data.test_split=0.1", "data.limit=1001"],
                                        ["data.offsets={lepton_pT=1.5}", "data.scales={m_bb=0.01}"]])
def test_the_lean_reader_gives_the_general_readers_numbers(higgs_files, monkeypatch, overrides):
    """Numeric Parquet skips the Arrow table; splits, targets and statistics are bit for bit the same."""
    file, folder = higgs_files
    lean = [load_higgs(path, overrides) for path in (file, folder)]
    monkeypatch.setattr(dlcli.data, "prepare_dense", lambda *args: None)
    general = load_higgs(file, overrides)
    for prepared in lean:
        assert dataclasses.asdict(prepared.preprocessing) == dataclasses.asdict(general.preprocessing)
        assert list(prepared.splits) == list(general.splits)
        for name, (x, y) in general.splits.items():
            np.testing.assert_array_equal(prepared.splits[name][0], x)
            np.testing.assert_array_equal(prepared.splits[name][1], y)
            assert prepared.splits[name][0].dtype == x.dtype and prepared.splits[name][1].dtype == y.dtype


def load_higgs(path: Path, overrides: list[str]):
    loaded = load_recipe("higgs-mlp", [f"data.path='{path}'", *overrides])
    return load_data(loaded.recipe.data, loaded.recipe.seed, loaded.resolve_path)


PARTITIONED_RECIPE = """
name = "partitioned"
seed = 0

[data]
source = "parquet"
path = "events"
target = "label"
validation_split = 0.25
standardize = true

[model]
kind = "mlp"
hidden = [8]

[optimizer]
learning_rate = 0.05

[train]
epochs = 15
batch_size = 32
"""


def test_hive_partition_folders_become_feature_columns(tmp_path):
    """The label depends only on the detector=... folder a row sits in: learnable only from that column."""
    rng = np.random.default_rng(0)
    for detector in (1, 2):
        folder = tmp_path / "events" / f"detector={detector}"
        folder.mkdir(parents=True)
        label = (rng.random(200) < (0.95 if detector == 2 else 0.05)).astype(np.float32)
        pq.write_table(pa.table({"noise": rng.normal(size=200), "label": label}), folder / "part-00000.parquet")
    (tmp_path / "events" / "_SUCCESS").write_bytes(b"")
    (tmp_path / "partitioned.toml").write_text(PARTITIONED_RECIPE)
    result = train_recipe(str(tmp_path / "partitioned.toml"), tmp_path / "runs")
    assert result.summary["final"]["accuracy"] > 0.85
    written = (result.run_dir / "preprocessing.json").read_text()
    assert '"detector"' in written and '"noise"' in written


def write_csv_gz(path: Path, table: pa.Table) -> None:
    with gzip.open(path, "wt") as out:
        out.write(",".join(table.column_names) + "\n")
        for row in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            out.write(",".join(f"{v:.6g}" for v in row) + "\n")


def test_a_glob_of_csv_gz_parts_trains_like_the_concatenated_file(tmp_path):
    table = higgs_table(900)
    write_csv_gz(tmp_path / "all.csv.gz", table)
    (tmp_path / "parts").mkdir()
    for i, start in enumerate(range(0, 900, 300)):
        write_csv_gz(tmp_path / "parts" / f"part-{i:05d}.csv.gz", table.slice(start, 300))
    (tmp_path / "parts" / "_SUCCESS").write_bytes(b"")
    whole = train_higgs(tmp_path / "one", tmp_path / "all.csv.gz", "data.source='csv'")
    parts = train_higgs(tmp_path / "parts-run", tmp_path / "parts" / "*.csv.gz", "data.source='csv'")
    assert parts["final"] == whole["final"]


# -- bad data sets: exit 2, naming the folder, the part and the column -------------------------------

def bad_folder(root: Path, kind: str) -> tuple[Path, list[str]]:
    """A data set with one kind of mistake, and the fragments its message must show."""
    table = higgs_table(300)
    if kind == "empty":
        folder = root / "empty"
        folder.mkdir()
        (folder / "_SUCCESS").write_bytes(b"")
        (folder / ".part-00000.crc").write_bytes(b"")
        return folder, ["empty", "no data files"]
    if kind == "no match":
        return root / "nowhere" / "*.parquet", ["nowhere", "matches no files"]
    folder = write_spark_folder(root / kind.replace(" ", "-"), table)
    last = sorted(folder.glob("part-*"))[-1]
    if kind == "missing column":
        pq.write_table(table.drop_columns(["m_bb"]), last)
        return folder, [last.name, "'m_bb'"]
    if kind == "other type":
        pq.write_table(table.set_column(3, "lepton_phi", table.column("lepton_phi").cast(pa.float64())), last)
        return folder, [last.name, "'lepton_phi'", "double"]
    if kind == "corrupt":
        last.write_bytes(last.read_bytes()[:200])  # a truncated copy
        return folder, [last.name, "not readable as Parquet"]
    if kind == "damaged pages":  # a sound footer: the part opens, its data does not decode
        data = last.read_bytes()
        last.write_bytes(data[:4] + bytes(2000) + data[2004:])
        return folder, [last.name, "cannot read it as PARQUET"]
    if kind == "mixed formats":
        write_csv_gz(folder / "part-00009.csv.gz", table)
        return folder, ["mixes data formats", "part-00009.csv.gz"]
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["empty", "no match", "missing column", "other type", "corrupt", "damaged pages",
                                  "mixed formats"])
def test_a_bad_data_set_is_a_user_error_naming_the_part(tmp_path, kind):
    path, fragments = bad_folder(tmp_path, kind)
    result = CliRunner().invoke(app, ["train", "higgs-mlp", "--set", f"data.path='{path}'", "--out",
                                      str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in: {result.stderr}"


def test_evaluate_and_predict_read_a_folder_of_parts_like_its_file(binary_run, tmp_path):
    run, test_file = binary_run.run_dir, binary_run.run_dir.parent.parent.parent / "test.csv"
    header, *rows = test_file.read_text().splitlines(keepends=True)
    (tmp_path / "parts").mkdir()
    for i, start in enumerate(range(0, len(rows), 80)):
        (tmp_path / "parts" / f"part-{i:05d}.csv").write_text(header + "".join(rows[start:start + 80]))
    runner = CliRunner()
    reports = [runner.invoke(app, ["evaluate", str(run), "--data", str(path), "--json"])
               for path in (test_file, tmp_path / "parts")]
    assert all(r.exit_code == 0 for r in reports), [r.output for r in reports]
    on_file, on_parts = (json.loads(r.stdout) for r in reports)
    assert on_parts.pop("data") == str(tmp_path / "parts")
    assert on_parts == {key: value for key, value in on_file.items() if key != "data"}
    predictions = [runner.invoke(app, ["predict", str(run), str(path)]) for path in (test_file, tmp_path / "parts")]
    assert predictions[0].exit_code == 0 and predictions[0].stdout == predictions[1].stdout
