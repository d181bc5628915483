"""What carrying the activation as data costs: one vmapped program that picks each member's activation with
``lax.switch`` against one program per activation, side by side in one process.

``dlcli compare --vary model.activation=...`` trains every element-wise activation and all their seeds as one
program; under ``vmap`` the switch becomes a select over every branch, so each member computes all the
activations and keeps one. The alternative is what compare did before: one program per activation, each
with its seeds vmapped. Both run here on the same setups, alternating, with a warm compilation cache;
printed: training seconds (compilation excluded) and wall seconds of the whole training (building the
states, compiling, training), medians of the repeats.

    python benchmarks/compare_activation_switch.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

from dlcli.compare.activations import with_activation
from dlcli.compare.experiment import Group, prepare_groups, train_group
from dlcli.compare.grid import Variant
from dlcli.recipe import load_recipe
from dlcli.report.console import make_reporter


def timed(groups: list[Group], base, seeds: list[int]) -> tuple[float, float]:
    """(training seconds, wall seconds) of training ``groups`` one after another."""
    quiet = make_reporter(quiet=True)
    prepared = prepare_groups(groups, base)
    tick, training = time.perf_counter(), 0.0
    for index, (group, setups) in enumerate(zip(groups, prepared)):
        runs = train_group(group, setups, seeds, index, quiet, lambda variant, seed, record: None)
        training += runs[0]["train_time_s"]
    return training, time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="compare-deep-mlp")
    parser.add_argument("--activations", default="sigmoid,tanh,relu,leaky_relu,elu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = load_recipe(args.recipe)
    seeds = [base.recipe.seed + i for i in range(args.seeds)]
    variants = [Variant(name, {"model.activation": name},
                        base.model_copy(update={"recipe": with_activation(base.recipe, name)}))
                for name in args.activations.split(",")]
    layouts = {"one program, lax.switch": [Group(variants, vmapped=True)],
               "one program per activation": [Group([variant], vmapped=False) for variant in variants]}
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in layouts}
    for repeat in range(args.repeats + 1):  # the first fills the compilation cache
        for label, groups in layouts.items():
            measured = timed(groups, base, seeds)
            if repeat:
                results[label].append(measured)
    print(f"{args.recipe}: {len(variants)} activations x {args.seeds} seeds, {base.recipe.train.epochs} epochs")
    first = None
    for label, measured in results.items():
        training = statistics.median(m[0] for m in measured)
        wall = statistics.median(m[1] for m in measured)
        first = first or (training, wall)
        print(f"{label:28} training {training:6.2f} s ({training / first[0]:4.2f}x)   "
              f"wall {wall:6.2f} s ({wall / first[1]:4.2f}x)")


if __name__ == "__main__":
    main()
