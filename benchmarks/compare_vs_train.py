"""`dlcli compare` of 5 learning rates x 5 seeds against one `dlcli train`, whole processes, side by side.

The 25 runs differ only in a number Adam keeps in its state, so they train
as one vmapped program; the question is what they cost against the single
run a user would otherwise repeat 25 times. Both commands run in turns with
a warm compilation cache (as every run after the first); medians printed.

    python benchmarks/compare_vs_train.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = "0.0003,0.001,0.003,0.01,0.03"


def timed(command: list[str], env: dict[str, str]) -> float:
    tick = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return time.perf_counter() - tick


def against_one_train(commands: dict[str, list[str]], env: dict[str, str], repeats: int) -> None:
    """Time ``commands`` in turns, ``repeats`` times after one run each to fill the cache, and print each
    median with its ratio to the first command's (one train)."""
    for command in commands.values():
        timed(command, env)  # fill the cache
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(repeats):
        for label, command in commands.items():
            times[label].append(timed(command, env))
    width = max(map(len, commands)) + 2
    base = statistics.median(next(iter(times.values())))
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:{width}} {median:7.2f} s  {median / base:5.2f}x one train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipe", default="digits-mlp")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cvt-"))
    env = {"DLCLI_CACHE_DIR": str(work / "xla")}
    train = [sys.executable, "-m", "dlcli", "train", args.recipe, "--out", str(work / "runs")]
    compare = [sys.executable, "-m", "dlcli", "compare", args.recipe, "--vary", f"optimizer.learning_rate={RATES}",
               "--seeds", "5", "--out", str(work / "runs")]
    against_one_train({"train (1 run)": train, "compare (5 rates x 5 seeds)": compare}, env, args.repeats)


if __name__ == "__main__":
    main()
