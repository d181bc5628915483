"""The HIGGS benchmark script still runs end to end (tiny size; no timing is asserted)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "higgs_vs_keras.py"


@pytest.mark.slow
def test_higgs_benchmark_runs_and_reports_every_trainer(tmp_path):
    trainers = ["dlcli"] + (["keras", "keras-spe32"] if importlib.util.find_spec("keras") else [])
    result = subprocess.run([sys.executable, str(SCRIPT), "--events", "20000", "--epochs", "1",
                             "--only", ",".join(trainers), "--json", str(tmp_path / "bench.json")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "| trainer |" in result.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [r["trainer"] for r in report["results"]] == trainers
    for r in report["results"]:
        assert 0.55 < r["val_accuracy"] <= 1.0  # the generated signal is learnable in one epoch
        assert r["steady_s"] > 0


SCALE = SCRIPT.parent / "scale.py"


@pytest.mark.slow
def test_scale_benchmark_writes_a_spark_folder_and_reports_the_memory_path(tmp_path):
    result = subprocess.run([sys.executable, str(SCALE), "--dir", str(tmp_path / "data"), "--sizes", "20000",
                             "--paths", "memory", "--json", str(tmp_path / "scale.json")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "data" / "higgs-20000"
    assert (folder / "_SUCCESS").is_file() and list(folder.glob("part-00000-*-c000.snappy.parquet"))
    [row] = json.loads((tmp_path / "scale.json").read_text())
    assert row["path"] == "memory" and row["failure"] is None, row
    assert 0.55 < row["accuracy"] <= 1.0 and row["peak_rss_gb"] > 0
    assert "|      20,000 | memory " in result.stdout
