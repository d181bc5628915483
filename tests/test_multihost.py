"""Two local processes joined by jax.distributed train like one process with all their devices, and print only
dlcli's own lines."""

import json
import os
import socket
import subprocess
import sys

from pathlib import Path

from conftest import assert_only_dlcli_output
from test_multidevice import RECIPE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one_process_with_four_devices(tmp_path):
    recipe = tmp_path / "moons-dp.toml"
    recipe.write_text(RECIPE)
    command = [sys.executable, "-m", "dlcli", "train", str(recipe), "--json"]
    base = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    coordinator = f"localhost:{free_port()}"
    workers = [
        subprocess.Popen([*command, "--out", str(tmp_path / f"runs-p{i}")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env={**base, "DLCLI_COORDINATOR": coordinator, "DLCLI_NUM_PROCESSES": "2",
                              "DLCLI_PROCESS_ID": str(i)})
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert_only_dlcli_output(out, err)  # Gloo's connection lines go to libraries.log, not in front of the JSON
    distributed = json.loads(outputs[0][0])
    run_dir = Path(distributed["run_dir"])
    assert "[Gloo]" in (run_dir / "libraries.log").read_text()
    assert distributed["device"].endswith("x4")
    assert not (tmp_path / "runs-p1").exists()  # only the first process writes a run directory

    single = subprocess.run([*command, "--out", str(tmp_path / "runs-single")], capture_output=True, text=True,
                            env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, timeout=300)
    assert single.returncode == 0, single.stderr
    reference = json.loads(single.stdout)
    assert abs(reference["final"]["loss"] - distributed["final"]["loss"]) < 1e-4
    assert reference["final"]["accuracy"] == distributed["final"]["accuracy"]
