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
    timed(train, env), timed(compare, env)  # fill the cache
    times: dict[str, list[float]] = {"train (1 run)": [], "compare (5 rates x 5 seeds)": []}
    for _ in range(args.repeats):
        times["train (1 run)"].append(timed(train, env))
        times["compare (5 rates x 5 seeds)"].append(timed(compare, env))
    base = statistics.median(times["train (1 run)"])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:30} {median:7.2f} s  {median / base:5.2f}x one train")


if __name__ == "__main__":
    main()
