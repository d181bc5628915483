"""Data parallelism on several (forced) CPU devices gives the single-device result."""

import json
import os
import subprocess
import sys

RECIPE = """
name = "moons-dp"
seed = 3
[data]
source = "moons"
[model]
kind = "mlp"
hidden = [32, 32]
[train]
epochs = 3
batch_size = 64
"""


def train_json(tmp_path, devices: int) -> dict:
    recipe = tmp_path / "moons-dp.toml"
    recipe.write_text(RECIPE)
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    result = subprocess.run([sys.executable, "-m", "dlcli", "train", str(recipe), "--json", "--out",
                             str(tmp_path / f"runs{devices}")], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_four_devices_match_one(tmp_path):
    one, four = train_json(tmp_path, 1), train_json(tmp_path, 4)
    assert one["device"].endswith("x1") and four["device"].endswith("x4")
    assert abs(one["final"]["loss"] - four["final"]["loss"]) < 1e-4
    assert one["final"]["accuracy"] == four["final"]["accuracy"]
    assert four["compilations"]["train"] == 1
