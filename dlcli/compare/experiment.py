"""``dlcli compare``: any recipe keys varied over a grid, every variant over the same seeds.

The comparison is paired as compare-activations pairs it: the base recipe's
seed fixes one data split for every run, and seed ``s`` gives every variant
the same initial weights (where the architecture is the same) and the same
batch order. Variants that differ only in what the training state can carry
(the optimizer's learning rate, momentum, betas, epsilon, clipping norm and
weight decay; single-number L1/L2 strengths; a dropout rate above 0; an
element-wise hidden activation: see :mod:`dlcli.compare.carried`) train as one
vmapped program with their seeds; every other variant (a new architecture,
batch size, optimizer kind, schedule, maxout) is a program of its own, its
seeds still vmapped. The summary says which grouping each variant had.
compare-activations is this comparison with gradient-flow and unit
diagnostics (``diagnose``).

The output directory ``out/compare/<recipe>/<timestamp>/`` holds the base
``recipe.toml``, ``metrics.jsonl`` (one line per variant, seed and epoch,
tagged with both), ``summary.json`` (every run's final numbers, each
variant's mean ± std, the verdict) and ``plots/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcli.compare.carried import activation_choice, carried_keep, carried_strengths, program_key
from dlcli.compare.grid import Variant
from dlcli.errors import DlcliError
from dlcli.recipe import LoadedRecipe, Recipe, to_toml


# A comparison's figures, drawn from its files by the figure process (side by side), by whether it diagnoses
# activations
PLOTS = {False: ("dlcli.compare.variant_plots:write_curves", "dlcli.compare.variant_plots:write_by_value"),
         True: ("dlcli.compare.plots:write_val_curves", "dlcli.compare.plots:write_diagnostics")}


@dataclass
class Comparison:
    run_dir: Path
    summary: dict[str, Any]


@dataclass
class Group:
    """Variants that share one compiled program."""

    variants: list[Variant]
    vmapped: bool  # several variants in one program (always true of the seeds)
    key: str = ""  # the variants' program_key
    kept: bool = False  # its program and setup serve later groups of the same key too (dlcli tune)

    @property
    def carried(self) -> bool:
        """The variants' own numbers ride in the training state (see :func:`program_key`), so that one program
        serves them all: several variants, or a program kept for later groups (a lone variant included)."""
        return self.vmapped or self.kept


@dataclass
class Watch:
    """What a caller does while a group trains, one epoch per call (a tuning study reports and prunes trials).

    ``on_epoch(member, record)`` sees each member's finished epoch; ``between_calls(engine, carry)`` may
    return a new carry (``engine.freeze(carry, members)``) before the next call.
    """

    on_epoch: Callable[[int, dict[str, Any]], None]
    between_calls: Callable[[Any, Any], Any]


def group_variants(variants: list[Variant]) -> list[Group]:
    """Variants in order of first appearance, grouped by :func:`program_key`."""
    groups: dict[str, list[Variant]] = {}
    for variant in variants:
        groups.setdefault(program_key(variant.loaded.recipe), []).append(variant)
    return [Group(members, len(members) > 1, key) for key, members in groups.items()]


def compare(variants: list[Variant], base: LoadedRecipe, seeds: list[int], out: Path, reporter,
            diagnose: bool = False) -> Comparison:
    """Train every variant over ``seeds``; write and return the comparison.

    Args:
      variants: from :func:`dlcli.compare.grid.make_variants`.
      base: the recipe the variants vary (its name and seed name the comparison).
      seeds: initialisation and shuffling seeds, shared by every variant.
      out: the folder under which ``compare/<recipe name>/<timestamp>/`` is created.
      reporter: progress display (see :mod:`dlcli.report.console`).
      diagnose: the variants differ in their hidden activation only (compare-activations): measure
        gradient flow and unit health, and add them to the summary, the table and the plots.
    """
    from dlcli.report import figure_process

    figure_process.start()  # first: matplotlib loads on another core while jax loads and the variants train
    from dlcli.engine.compilation import Compilations  # (imports jax)

    started, counted = time.perf_counter(), Compilations.start()
    groups = group_variants(variants)
    try:
        # The seeds' weights are drawn for all variants at once (initial_states), unless only the recipe's seed runs
        prepared = prepare_groups(groups, base, initialise=seeds == [base.recipe.seed])
        return run_groups(groups, prepared, base, seeds, out, reporter, diagnose, started, counted)
    finally:
        figure_process.stop()  # unused when a variant or a group failed


def run_groups(groups: list[Group], prepared: list[list[Any]], base: LoadedRecipe, seeds: list[int], out: Path,
               reporter, diagnose: bool, started: float, counted) -> Comparison:
    """Train the prepared groups, write the comparison's files and have its figures drawn (see :func:`compare`)."""
    from dlcli.checkpoint import create_run_dir, write_json, write_text
    from dlcli.compare.summary import summarize_variants
    from dlcli.quiet import log_into
    from dlcli.report import figure_process
    from dlcli.report.tensorboard import ScalarLogs

    variants = [variant for group in groups for variant in group.variants]
    notes = unused_settings(base)
    for note in notes:
        reporter.note(note)
    run_dir = create_run_dir(out / "compare", base.recipe.name)
    log_into(run_dir)
    varied = ", ".join(dict.fromkeys(k for v in variants for k in v.values))
    write_text(run_dir / "recipe.toml", f"# resolved from {base.source}; compare varies {varied}\n" + to_toml(base.recipe))
    if len({data_key(v.loaded.recipe) for v in variants}) == 1:  # one split and one preprocessing for all
        prepared[0][0].data.preprocessing.save(run_dir / "preprocessing.json")
    runs = []
    with (run_dir / "metrics.jsonl").open("a") as metrics_file, ScalarLogs(run_dir / "tensorboard") as scalars:
        def write(variant: Variant, seed: int, record: dict[str, Any]) -> None:
            metrics_file.write(json.dumps({"variant": variant.label, "seed": seed, **record}) + "\n")
            metrics_file.flush()
            scalars.write(f"{variant.label.replace('/', '_')}/seed_{seed}", record)

        for index, (group, setup) in enumerate(zip(groups, prepared)):
            runs += train_group(group, setup, seeds, index, reporter, write, diagnose=diagnose)
    summary = summarize_variants(base.recipe, variants, runs, seeds, time.perf_counter() - started, diagnose)
    summary["groups"] = [{"variants": [v.label for v in g.variants], "one_program": True,
                          "vmapped": "variants and seeds" if g.vmapped else "seeds"} for g in groups]
    summary["compilations"] = counted.since()  # "train": one per group
    summary["notes"] = notes
    write_json(run_dir / "summary.json", summary)
    figure_process.send([(name, (run_dir,), {}) for name in PLOTS[diagnose]])
    figure_process.wait()
    return Comparison(run_dir, summary)


def unused_settings(loaded: LoadedRecipe) -> list[str]:
    """Notes for the recipe keys a comparison does not use, when the recipe or --set gave them."""
    notes = []
    if "train.checkpoint_seconds" in loaded.origins:
        notes.append("train.checkpoint_seconds is not used: compare keeps no checkpoints (its runs are "
                     "re-readable from metrics.jsonl and summary.json).")
    return notes


def prepare_groups(groups: list[Group], base: LoadedRecipe, data_by_config: dict[str, Any] | None = None,
                   initialise: bool = True) -> list[list[Any]]:
    """Each group's setups, one per variant (data loaded once per distinct ``[data]``): every variant is
    checked before any trains.

    Args:
      data_by_config: loaded data by ``[data]`` and seed, kept by a caller that prepares several times.
      initialise: draw the first variant's weights (its group's, when the group shares one program); with
        False every variant's model is checked and shaped only, for weights drawn later.
    """
    from dlcli.train.setup import prepare

    data_by_config = {} if data_by_config is None else data_by_config
    setups: list[list[Any]] = []
    for group in groups:
        setups.append([])
        for variant in group.variants:
            recipe = variant.loaded.recipe
            key = data_key(recipe)
            # in a shared program the first variant's model serves all: the others are checked, not initialised
            setup = prepare(variant.loaded, data_by_config.get(key), inject=group.carried,
                            shapes_only=not initialise or (group.carried and bool(setups[-1])))
            data_by_config.setdefault(key, setup.data)
            if not setup.built.task.supervised:
                raise DlcliError(f"{base.source}: compare and tune rank classification and regression recipes; this one "
                                 f"is a {setup.built.task.kind} task.")
            setups[-1].append(setup)
    return setups


def data_key(recipe: Recipe) -> str:
    """Recipes with equal keys load the same data (the seed draws the split)."""
    return recipe.data.model_dump_json() + str(recipe.seed)


def train_group(group: Group, setups: list[Any], seeds: list[int], index: int, reporter,
                write: Callable[[Variant, int, dict[str, Any]], None], watch: Watch | None = None,
                diagnose: bool = False) -> list[dict[str, Any]]:
    """Every (variant, seed) of one group as one program (``setups``: one per variant); one run per variant.

    ``write(variant, seed, record)`` receives each epoch record as it ends. A member whose loss turns NaN
    or infinite ends "diverged" (frozen at its last good state); the others train on. With ``diagnose``
    (an activation comparison), each member's gradient flow and unit health are measured before, during
    and after training (:mod:`dlcli.compare.diagnostics`).
    """
    import jax

    from dlcli.engine.driver import Diverged, Engine, Progress, stack_trees
    from dlcli.engine.executables import traced

    tick = time.perf_counter()
    setup = setups[0]
    members = [(variant, seed) for variant in group.variants for seed in seeds]
    built, states, architecture = initial_states(group, setups, seeds)
    probe = activation_probe(setup, built, members) if diagnose else None
    engine = Engine(setup, [seed for _, seed in members], built, per_epoch=watch is not None,
                    epoch_extras=probe.grad_records if probe else None,
                    kept_as=(group.key if group.carried and group.key else traced(setup.recipe), architecture))
    progress = Progress(histories=[[] for _ in members])
    carry = engine.stack([engine.member_carry(state) for state in states])
    initial = probe.measure(*stack_trees([(s.params, s.rest) for s in states])) if probe else None
    label = group.variants[0].label if len(group.variants) == 1 else f"{len(group.variants)} variants"
    reporter.start(f"{label} x{len(seeds)} seeds", setup.recipe.train.epochs, engine.layout.plan.steps,
                   engine.examples, f"group {index + 1}: {len(members)} runs in one program")

    def on_epoch(m: int, record: dict[str, Any], _carry) -> None:
        write(*members[m], record)
        if watch is not None:
            watch.on_epoch(m, record)

    between_calls = (lambda carry, _: watch.between_calls(engine, carry)) if watch else (lambda carry, _: None)
    try:
        carry = engine.run(carry, progress, reporter, between_calls, on_epoch)
    except Diverged as error:  # a one-member stack: its carry holds the last good state, marked diverged
        carry = error.carry
    finally:
        reporter.close()
    final = jax.device_get(carry)
    runs = group_runs(group, members, final, progress, index, built.parameter_count, time.perf_counter() - tick)
    if probe:
        add_diagnostics(runs, members, probe, initial, probe.measure(final.state.params, final.state.rest))
    return runs


def initial_states(group: Group, setups: list[Any], seeds: list[int]) -> tuple[Any, list[Any], tuple[str, ...]]:
    """(member 0's assembly, every member's initial TrainState, the activations its layers choose from
    (none: the recipe's architecture)), members ordered variant by variant.

    Seed ``s`` gives every variant the same initial weights (paired); variants that differ in their
    activation get ChoiceActivation layers and each its own index in the model state.
    """
    import jax
    import numpy as np

    from dlcli.activations import get_activation, split_spec
    from dlcli.assemble import assemble_seeds
    from dlcli.compare.choice import can_share, rest_with_index, with_choice
    from dlcli.engine.compilation import QUICK
    from dlcli.engine.executables import kept_program
    from dlcli.train.step import TrainState

    setup = setups[0]
    choice = activation_choice([v.loaded.recipe for v in group.variants]) if group.vmapped else None
    models = ({seed: setup.built for seed in seeds} if seeds == [setup.recipe.seed] and choice is None
              else assemble_seeds(setup.recipe, setup.data.preprocessing, seeds))  # one program for all seeds
    if choice is not None:
        specs, _ = choice
        names, fns = tuple(split_spec(spec)[0] for spec in specs), tuple(get_activation(spec) for spec in specs)
        if not can_share(models[seeds[0]].model):
            raise RuntimeError(f"model.kind = '{setup.recipe.model.kind}' has no swappable Activation layers")
        models = {seed: with_choice(built, names, fns, 0) for seed, built in models.items()}
    states = []
    for v, (variant, variant_setup) in enumerate(zip(group.variants, setups)):
        recipe = variant.loaded.recipe
        init = kept_program(variant_setup.optimizer.init, (models[seeds[0]].params,), variant_setup.optimizer_kept,
                            "optimizer_init", QUICK)  # once per variant, not once per seed; kept across runs
        for seed in seeds:
            built = models[seed]
            rest = rest_with_index(built.model, choice[1][v]) if choice else built.rest
            states.append(TrainState(built.params, rest, init(built.params),
                                     np.zeros((), np.int32),
                                     jax.random.key(seed) if setup.augment is not None else None,
                                     carried_strengths(recipe) if group.vmapped else None,
                                     carried_keep(recipe) if group.vmapped else None))
    return models[seeds[0]], states, tuple(choice[0]) if choice else ()


def group_runs(group: Group, members: list[tuple[Variant, int]], final, progress, index: int, parameters: int,
               wall: float) -> list[dict[str, Any]]:
    """One run per variant, each with its members' ends and histories, from the stack's final carry."""
    runs: dict[str, dict[str, Any]] = {}
    for m, (variant, seed) in enumerate(members):
        ended = "diverged" if final.diverged[m] else ("early_stopped" if final.stop.stopped[m] else "completed")
        run = runs.setdefault(variant.label, {"variant": variant.label, "values": variant.values, "group": index + 1,
                                              "parameters": parameters, "members": [],
                                              "wall_time_s": wall, "train_time_s": progress.train_seconds})
        run["members"].append({"seed": seed, "ended": ended, "best_epoch": int(final.stop.best_epoch[m]),
                               "history": progress.histories[m]})
    return list(runs.values())


def activation_probe(setup, built, members: list[tuple[Variant, int]]):
    """The gradient and unit probe of a stack whose members are named by their activation."""
    from dlcli.activations import split_spec
    from dlcli.compare.diagnostics import Probe

    kinds = [split_spec(variant.loaded.recipe.model.settings()["activation"])[0] for variant, _ in members]
    return Probe.make(setup, built, kinds)


def add_diagnostics(runs: list[dict[str, Any]], members: list[tuple[Variant, int]], probe, initial, final) -> None:
    """Each member's gradient norms and unit summaries at initialisation and at the end, into ``runs``."""
    by_label = {run["variant"]: run for run in runs}
    for m, (variant, seed) in enumerate(members):
        run = by_label[variant.label]
        run.update(activation=variant.label, kind=probe.kinds[m])
        member = next(member for member in run["members"] if member["seed"] == seed)
        member["grad_norms"] = {"init": initial[0][m].tolist(), "final": final[0][m].tolist()}
        member["units"] = {"init": initial[1][m], "final": final[1][m]}
