"""`dlcli tune` of 32 digits-mlp-tune trials against one `dlcli train digits-mlp`, whole processes, side by side.

The trials vary the learning rate, L2, dropout and hidden width; Optuna
proposes ``--parallel 8`` at a time, the trials of a batch that share a
program train as one vmapped stack, and the median pruner stops the ones
that fall behind. ``--sequential`` adds the same study one trial at a time
(``--parallel 1``). Every command runs with a warm compilation cache (a
first run fills it); medians printed.

    python benchmarks/tune_vs_train.py --repeats 1 [--sequential]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from compare_vs_train import against_one_train  # (this folder is on the path of a script run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--sequential", action="store_true", help="also time --parallel 1")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tvt-"))
    env = {"DLCLI_CACHE_DIR": str(work / "xla")}
    out = ["--out", str(work / "runs")]
    commands = {"train digits-mlp (1 run)": [sys.executable, "-m", "dlcli", "train", "digits-mlp", *out]}
    for parallel in (8, 1) if args.sequential else (8,):
        commands[f"tune {args.trials} trials --parallel {parallel}"] = [
            sys.executable, "-m", "dlcli", "tune", "digits-mlp-tune", "--trials", str(args.trials),
            "--parallel", str(parallel), *out]
    against_one_train(commands, env, args.repeats)


if __name__ == "__main__":
    main()
