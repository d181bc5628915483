"""Time to result: whole processes, from the command to its last file, side by side.

Each case runs as a fresh process (``python -m dlcli ...`` or a script), and
the contenders of a case take turns ``--repeats`` times, so that a busy
machine slows each alike; the table shows medians and the ratio to the
yardstick, a hand-written JAX script of the same work
(``benchmarks/handwritten/``). dlcli runs twice per turn: with an empty
compilation cache ("cold", as on a first run) and with the cache its
previous turn left ("warm", as on every later run).

Also reported: the fixed cost of a run (whole process minus the
``train_time_s`` that its summary.json records) for every bundled recipe
with ``--recipes all``, and the commands that should answer at once.

    python benchmarks/time_to_result.py                  # the issue's table, 3 repeats
    python benchmarks/time_to_result.py --repeats 5 --recipes all
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "handwritten"
PYTHON = sys.executable


def run(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    """Seconds the whole process took; fails loudly if it failed."""
    tick = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - tick
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def dlcli(*args: str) -> list[str]:
    return [PYTHON, "-m", "dlcli", *args]


def newest_run(root: Path, name: str) -> Path:
    return sorted((root / name).iterdir())[-1]


class Case:
    """One row group: contenders timed in turns; ``yardstick`` names the one ratios refer to.

    Each turn starts one contender later than the turn before, so that every contender follows every other
    as often (a process started right after another one finds the machine still busy with its files); a
    warm-cache contender runs once untimed first, so that every one of its turns is warm.
    """

    def __init__(self, name: str, contenders: dict[str, callable], yardstick: str):
        self.name, self.contenders, self.yardstick = name, contenders, yardstick
        self.times: dict[str, list[float]] = {label: [] for label in contenders}
        self.turns = 0

    def prime(self) -> None:
        for label, go in self.contenders.items():
            if "warm" in label:
                go()

    def turn(self) -> None:
        labels = list(self.contenders)
        start = self.turns % len(labels)
        for label in labels[start:] + labels[:start]:
            self.times[label].append(self.contenders[label]())
        self.turns += 1

    def rows(self) -> list[tuple[str, str, float, float]]:
        base = statistics.median(self.times[self.yardstick]) if self.yardstick else None
        out = []
        for label, times in self.times.items():
            median = statistics.median(times)
            out.append((self.name, label, median, median / base if base else float("nan")))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipes", default="mlps", help="fixed costs of 'mlps' (the bundled MLP recipes), "
                        "'all' or 'none'")
    parser.add_argument("--no-keras", action="store_true", help="skip Keras even when it is installed")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    parser.add_argument("--higgs", type=Path, help="a folder for higgs-train.parquet and higgs-val.parquet (1M "
                        "HIGGS-shaped events, written there if missing): adds 1 epoch of the course's HIGGS network, "
                        "dlcli vs Keras")
    parser.add_argument("--only-higgs", action="store_true", help="with --higgs: time only that case")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ttr-"))
    warm_cache = work / "cache-warm"
    cold = lambda: {"DLCLI_CACHE_DIR": str(Path(tempfile.mkdtemp(dir=work, prefix="cold-")))}  # noqa: E731
    warm = {"DLCLI_CACHE_DIR": str(warm_cache)}
    runs = work / "runs"

    cases = [
        Case("dlcli --help", {"dlcli": lambda: run(dlcli("--help"))}, ""),
        Case("dlcli recipes", {"dlcli": lambda: run(dlcli("recipes"))}, ""),
        Case("train digits-mlp --dry-run", {"dlcli": lambda: run(dlcli("train", "digits-mlp", "--dry-run"))}, ""),
        Case("train mlp-xor", {
            "jax script": lambda: run([PYTHON, str(SCRIPTS / "mlp_xor.py"), str(work / "xor")]),
            "dlcli cold cache": lambda: run(dlcli("train", "mlp-xor", "--out", str(runs)), cold()),
            "dlcli warm cache": lambda: run(dlcli("train", "mlp-xor", "--out", str(runs)), warm),
            **({} if args.no_keras or not has_keras() else {
                "keras 3 (jax)": lambda: run([PYTHON, str(SCRIPTS / "keras_mlp_xor.py"), str(work / "kxor")],
                                             {"KERAS_BACKEND": "jax"})}),
        }, "jax script"),
        Case("train digits-mlp", {
            "jax script": lambda: run([PYTHON, str(SCRIPTS / "digits_mlp.py"), str(work / "digits")]),
            "dlcli cold cache": lambda: run(dlcli("train", "digits-mlp", "--out", str(runs)), cold()),
            "dlcli warm cache": lambda: run(dlcli("train", "digits-mlp", "--out", str(runs)), warm),
        }, "jax script"),
    ]
    if not args.only_higgs:
        cases.append(evaluation_case(work, runs, warm))
    if args.higgs:
        train_file, val_file = args.higgs / "higgs-train.parquet", args.higgs / "higgs-val.parquet"
        if not (train_file.is_file() and val_file.is_file()):  # 1M HIGGS-shaped events, as higgs_vs_keras writes
            sys.path.insert(0, str(HERE))
            from higgs_vs_keras import write_data

            args.higgs.mkdir(parents=True, exist_ok=True)
            write_data(args.higgs, 1_000_000, 0.2, 1337)
        higgs = ["train", "higgs-mlp", "--out", str(runs), "--set", f"data.path='{train_file}'", "--set",
                 f"data.val_path='{val_file}'", "--set", "data.validation_split=0.0", "--set", "data.test_split=0.0",
                 "--set", "train.epochs=1"]
        higgs_case = Case("train higgs-mlp, 1 epoch", {
            "keras 3 (jax)": lambda: run([PYTHON, str(SCRIPTS / "keras_higgs.py"), str(train_file), str(val_file),
                                          str(work / "khiggs"), "1"], {"KERAS_BACKEND": "jax"}),
            "dlcli cold cache": lambda: run(dlcli(*higgs), cold()),
            "dlcli warm cache": lambda: run(dlcli(*higgs), warm),
        }, "keras 3 (jax)")
        cases = [higgs_case] if args.only_higgs else [*cases, higgs_case]
    for case in cases:
        case.prime()
    for turn in range(args.repeats):
        for case in cases:
            case.turn()
        print(f"turn {turn + 1}/{args.repeats} done", file=sys.stderr)

    rows = [row for case in cases for row in case.rows()]
    print(f"\n{'case':32} {'contender':18} {'median s':>9} {'ratio':>7}")
    for name, label, median, ratio in rows:
        print(f"{name:32} {label:18} {median:9.2f} {ratio:7.2f}")
    fixed = [] if args.only_higgs else fixed_costs(args.recipes, work, warm, cold, args.repeats)
    print(f"\n{'recipe':28} {'whole s (warm)':>14} {'train_time_s':>12} {'fixed s':>8} {'programs':>8}")
    for name, whole, train, programs in fixed:
        print(f"{name:28} {whole:14.2f} {train:12.2f} {whole - train:8.2f} {programs:8}")
    if args.json:
        args.json.write_text(json.dumps({"cases": rows, "fixed": fixed}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


def evaluation_case(work: Path, runs: Path, warm: dict[str, str]) -> Case:
    """`dlcli evaluate` and `predict` on a finished digits-mlp run against the script that loads and evaluates."""
    run(dlcli("train", "digits-mlp", "--out", str(runs)), warm)  # a run to evaluate, and a warm cache
    digits_run = newest_run(runs, "digits-mlp")
    run([PYTHON, str(SCRIPTS / "digits_mlp.py"), str(work / "digits")])
    inputs = work / "inputs.npz"
    write_digits_inputs(inputs)
    outputs = itertools.count()
    return Case("evaluate digits-mlp run", {
        "jax script": lambda: run([PYTHON, str(SCRIPTS / "digits_evaluate.py"), str(work / "digits")]),
        "dlcli evaluate": lambda: run(dlcli("evaluate", str(digits_run)), warm),
        "dlcli predict": lambda: run(dlcli("predict", str(digits_run), str(inputs), "--out",  # never overwrites
                                           str(work / f"predictions-{next(outputs)}.csv")), warm),
    }, "jax script")


def has_keras() -> bool:
    import importlib.util

    return importlib.util.find_spec("keras") is not None


def write_digits_inputs(path: Path) -> None:
    """100 digit images as the NPZ that `dlcli predict` reads for a run trained on arrays."""
    import numpy as np
    from sklearn.datasets import load_digits

    np.savez(path, x=load_digits().images[:100, :, :, None].astype(np.float32))  # (N, 8, 8, 1), as trained


def fixed_costs(which: str, work: Path, warm: dict, cold, repeats: int) -> list[tuple[str, float, float, int]]:
    """(recipe, median whole-process seconds, its train_time_s, programs compiled) with a warm cache."""
    recipes_dir = HERE.parent / "recipes"
    if which == "none":
        return []
    # Recipes that read the user's own file (HIGGS) have nothing to run on here.
    names = sorted(p.stem for p in recipes_dir.glob("*.toml")
                   if not any(f'source = "{kind}"' in p.read_text() for kind in ("parquet", "csv", "npz")))
    if which == "mlps":
        names = [n for n in names if 'kind = "mlp"' in (recipes_dir / f"{n}.toml").read_text()
                 and "higgs" not in n and "[compare]" not in (recipes_dir / f"{n}.toml").read_text()]
    out = []
    for name in names:
        root = work / "fixed" / name
        run(dlcli("train", name, "--out", str(root)), warm)  # fill the cache
        wholes, trains, programs = [], [], 0
        for _ in range(repeats):
            wholes.append(run(dlcli("train", name, "--out", str(root)), warm))
            summary = json.loads((newest_run(root, name) / "summary.json").read_text())
            trains.append(summary["train_time_s"])
            programs = summary["compilations"]["programs"]
        out.append((name, statistics.median(wholes), statistics.median(trains), programs))
    return out


if __name__ == "__main__":
    main()
