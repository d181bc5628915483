"""Only dlcli speaks: library logging, warnings and native stdout go to libraries.log, or to stderr with -v."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# A process set up as `dlcli` sets itself up, in which libraries talk in each of their ways.
LIBRARIES_TALK = """
import logging, os, sys, warnings
from pathlib import Path
from dlcli import quiet

quiet.capture_native_stdout()
quiet.route(verbose={verbose})
logging.getLogger("absl").warning("Attempted to create temporary directory")
warnings.warn("a library deprecation")
os.write(1, b"[Gloo] Rank 0 is connected to 1 peer ranks\\n")
print("{{\\"result\\": 1}}")
quiet.log_into(Path(sys.argv[1]))
logging.getLogger("orbax").warning("after the run directory exists")
"""
LIBRARY_LINES = ("Attempted to create temporary directory", "a library deprecation", "[Gloo] Rank 0",
                 "after the run directory exists")


@pytest.mark.parametrize("verbose", [False, True])
def test_library_output_goes_to_the_run_log_or_with_verbose_to_stderr(tmp_path: Path, verbose: bool):
    shown = subprocess.run([sys.executable, "-c", LIBRARIES_TALK.format(verbose=verbose), str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == '{"result": 1}\n'  # stdout is dlcli's alone, -v or not
    log = tmp_path / "libraries.log"
    if verbose:
        assert all(line in shown.stderr for line in LIBRARY_LINES), shown.stderr
        assert not log.exists()
    else:
        assert shown.stderr == ""
        assert all(line in log.read_text() for line in LIBRARY_LINES), log.read_text()


def test_verbose_is_a_global_option(tmp_path: Path):
    shown = subprocess.run([sys.executable, "-m", "dlcli", "--help"], capture_output=True, text=True, timeout=60)
    assert "--verbose" in shown.stdout and "-v" in shown.stdout
    listed = subprocess.run([sys.executable, "-m", "dlcli", "-v", "recipes"], capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and "mlp-xor" in listed.stdout


def test_a_checkpoint_saved_over_a_killed_save_says_nothing(tmp_path: Path, caplog):
    """A kill during a save leaves orbax's temporary folder; the next save removes it without a warning."""
    from dlcli.checkpoint import load_checkpoint, save_checkpoint

    tree = {"w": np.arange(6, dtype=np.float32)}
    save_checkpoint(tmp_path / "last", tree)
    (tmp_path / "last.new.orbax-checkpoint-tmp").mkdir()  # what a SIGKILL mid-save leaves
    (tmp_path / "last.new").mkdir()
    with caplog.at_level(logging.INFO):
        save_checkpoint(tmp_path / "last", {"w": tree["w"] * 2})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "last", tree)["w"], tree["w"] * 2)
