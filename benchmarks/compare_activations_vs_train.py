"""Wall time of `dlcli compare-activations` (6 activations x 5 seeds) against one `dlcli train` of the same recipe.

The issue's target: the whole comparison costs at most 3x one training run.
Both are timed end to end as a user runs them (process start, imports,
compilation, training, files and plots), alternating so that a busy
machine slows both alike, and the median of each is compared.

    python benchmarks/compare_activations_vs_train.py [--repeats 3] [--cpus 0,1] [--recipe compare-deep-mlp]

``--cpus`` pins both commands to those cores (a laptop on a bigger machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(command: list[str], cpus: set[int] | None) -> float:
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="compare-deep-mlp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--activations", default="sigmoid,tanh,relu,leaky_relu,elu,maxout")
    parser.add_argument("--cpus", default="", help="comma-separated core numbers to pin both commands to")
    args = parser.parse_args()
    cpus = {int(c) for c in args.cpus.split(",")} if args.cpus else None
    dlcli = [sys.executable, "-m", "dlcli"]
    with tempfile.TemporaryDirectory() as out:
        single = [*dlcli, "train", args.recipe, "--out", out]
        compare = [*dlcli, "compare-activations", args.recipe, "--activations", args.activations,
                   "--seeds", str(args.seeds), "--out", out]
        times: dict[str, list[float]] = {"train": [], "compare": []}
        for repeat in range(args.repeats):
            times["train"].append(timed(single, cpus))
            times["compare"].append(timed(compare, cpus))
            print(f"repeat {repeat + 1}: train {times['train'][-1]:.1f} s, compare-activations "
                  f"{times['compare'][-1]:.1f} s", flush=True)
    train_s, compare_s = statistics.median(times["train"]), statistics.median(times["compare"])
    runs = len(args.activations.split(",")) * args.seeds
    print(f"median: one `dlcli train {args.recipe}` {train_s:.1f} s; compare-activations "
          f"({runs} runs) {compare_s:.1f} s; ratio {compare_s / train_s:.2f}x (target <= 3x); "
          f"cores: {sorted(cpus) if cpus else os.cpu_count()}")


if __name__ == "__main__":
    main()
