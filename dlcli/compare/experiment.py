"""``dlcli compare``: any recipe keys varied over a grid, every variant over the same seeds.

The comparison is paired as compare-activations pairs it: the base recipe's
seed fixes one data split for every run, and seed ``s`` gives every variant
the same initial weights (where the architecture is the same) and the same
batch order. Variants that differ only in numbers the training state can
carry (the optimizer's learning rate, momentum, betas, epsilon, clipping norm
and weight decay; single-number L1/L2 strengths; a dropout rate above 0) train
as one vmapped program with their seeds; every other variant (a new
architecture, batch size, optimizer kind, schedule) is a program of its own,
its seeds still vmapped. The summary says which grouping each variant had.

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

from dlcli.compare.grid import Variant
from dlcli.errors import DlcliError
from dlcli.recipe import LoadedRecipe, Recipe, to_toml


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


def program_key(recipe: Recipe) -> str:
    """The recipe with what the optimizer state can carry blanked out: equal keys share a program."""
    from dlcli.optim import OPTIMIZERS, injectable

    train = recipe.train
    if carried_strengths(recipe) is not None:  # carried in the state (TrainState.penalty)
        train = train.model_copy(update={"l1": 0.0, "l2": 0.0})
    recipe = recipe.model_copy(update={"seed": 0, "train": train})
    if carried_keep(recipe) is not None:  # a rate above 0 is carried in the state (TrainState.dropout)
        recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update={"dropout": 0.5})})
    if not injectable(recipe.optimizer):
        return to_toml(recipe)
    own, settings = set(OPTIMIZERS.options(recipe.optimizer.kind)), recipe.optimizer.settings()
    numbers = {k: 0.0 for k, v in settings.items() if k in own and is_number(v)}
    shared = {k: 1.0 for k in ("clip_global_norm", "weight_decay")  # carried too when on (off: no such step)
              if is_number(settings.get(k)) and settings[k] > 0}
    optimizer = recipe.optimizer.model_copy(update={"learning_rate": 1.0, **numbers, **shared})
    return to_toml(recipe.model_copy(update={"optimizer": optimizer}))


def group_variants(variants: list[Variant], kept: bool = False) -> list[Group]:
    """Variants in order of first appearance, grouped by :func:`program_key` (``kept``: see :class:`Group`)."""
    groups: dict[str, list[Variant]] = {}
    for variant in variants:
        groups.setdefault(program_key(variant.loaded.recipe), []).append(variant)
    return [Group(members, len(members) > 1, key, kept) for key, members in groups.items()]


def compare(variants: list[Variant], base: LoadedRecipe, seeds: list[int], out: Path, reporter) -> Comparison:
    """Train every variant over ``seeds``; write and return the comparison.

    Args:
      variants: from :func:`dlcli.compare.grid.make_variants`.
      base: the recipe the variants vary (its name and seed name the comparison).
      seeds: initialisation and shuffling seeds, shared by every variant.
      out: the folder under which ``compare/<recipe name>/<timestamp>/`` is created.
      reporter: progress display (see :mod:`dlcli.report.console`).
    """
    from dlcli.checkpoint import create_run_dir, write_json, write_text
    from dlcli.compare.summary import summarize_variants
    from dlcli.compare.variant_plots import write_variant_plots
    from dlcli.report.tensorboard import ScalarLogs

    from dlcli.engine.compilation import Compilations

    started, counted = time.perf_counter(), Compilations.start()
    groups = group_variants(variants)
    prepared = prepare_groups(groups, base)
    run_dir = create_run_dir(out / "compare", base.recipe.name)
    write_text(run_dir / "recipe.toml", f"# resolved from {base.source}; compare varies "
                                        f"{', '.join(dict.fromkeys(k for v in variants for k in v.values))}\n" + to_toml(base.recipe))
    runs = []
    with (run_dir / "metrics.jsonl").open("a") as metrics_file, ScalarLogs(run_dir / "tensorboard") as scalars:
        def write(variant: Variant, seed: int, record: dict[str, Any]) -> None:
            metrics_file.write(json.dumps({"variant": variant.label, "seed": seed, **record}) + "\n")
            metrics_file.flush()
            scalars.write(f"{variant.label.replace('/', '_')}/seed_{seed}", record)

        for index, (group, setup) in enumerate(zip(groups, prepared)):
            runs += train_group(group, setup, seeds, index, reporter, write)
    summary = summarize_variants(base.recipe, variants, runs, seeds, time.perf_counter() - started)
    summary["groups"] = [{"variants": [v.label for v in g.variants], "one_program": True,
                          "vmapped": "variants and seeds" if g.vmapped else "seeds"} for g in groups]
    summary["compilations"] = counted.since()  # "train": one per group
    write_json(run_dir / "summary.json", summary)
    write_variant_plots(run_dir)
    return Comparison(run_dir, summary)


def prepare_groups(groups: list[Group], base: LoadedRecipe, data_by_config: dict[str, Any] | None = None
                   ) -> list[list[Any]]:
    """Each group's setups, one per variant (data loaded once per distinct ``[data]``): every variant is
    checked before any trains.

    Args:
      data_by_config: loaded data by ``[data]`` and seed, kept by a caller that prepares several times.
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
                            shapes_only=group.carried and bool(setups[-1]))
            data_by_config.setdefault(key, setup.data)
            if not setup.built.task.supervised:
                raise DlcliError(f"{base.source}: compare and tune rank classification and regression recipes; this one "
                                 f"is a {setup.built.task.kind} task.")
            setups[-1].append(setup)
    return setups


def is_number(value: Any) -> bool:
    """A plain number setting (not a boolean, a table or a name)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def carried_strengths(recipe: Recipe) -> dict[str, Any] | None:
    """A variant's L1/L2 strengths as data in its state, when they are single numbers (see :func:`program_key`)."""
    import numpy as np

    l1, l2 = recipe.train.l1, recipe.train.l2
    if not all(isinstance(strength, (int, float)) for strength in (l1, l2)):
        return None
    return {"l1": np.float32(l1), "l2": np.float32(l2)}


def carried_keep(recipe: Recipe) -> Any:
    """A variant's dropout keep probability as data in its state, when its model drops units at all (a model
    without dropout has no Dropout layers: another program)."""
    import numpy as np

    rate = recipe.model.settings().get("dropout")
    if not is_number(rate) or not 0 < rate < 1:
        return None
    return np.float32(1.0 - rate)


def data_key(recipe: Recipe) -> str:
    """Recipes with equal keys load the same data (the seed draws the split)."""
    return recipe.data.model_dump_json() + str(recipe.seed)


def train_group(group: Group, setups: list[Any], seeds: list[int], index: int, reporter,
                write: Callable[[Variant, int, dict[str, Any]], None], watch: Watch | None = None
                ) -> list[dict[str, Any]]:
    """Every (variant, seed) of one group as one program (``setups``: one per variant); one run per variant.

    ``write(variant, seed, record)`` receives each epoch record as it ends. A member whose loss turns NaN
    or infinite ends "diverged" (frozen at its last good state); the others train on.
    """
    import jax
    import numpy as np

    from dlcli.assemble import assemble
    from dlcli.engine.compilation import run_once
    from dlcli.engine.driver import Diverged, Engine, Progress
    from dlcli.train.step import TrainState

    tick = time.perf_counter()
    setup = setups[0]
    members = [(variant, seed) for variant in group.variants for seed in seeds]
    optimizers = {v.label: s.optimizer for v, s in zip(group.variants, setups)}
    models = {seed: setup.built if seed == setup.recipe.seed else assemble(setup.recipe, setup.data.preprocessing,
                                                                         seed=seed) for seed in seeds}  # paired
    states = [TrainState(models[seed].params, models[seed].rest,
                         run_once(optimizers[variant.label].init, models[seed].params), np.zeros((), np.int32),
                         jax.random.key(seed) if setup.augment is not None else None,
                         carried_strengths(variant.loaded.recipe) if group.vmapped else None,
                         carried_keep(variant.loaded.recipe) if group.vmapped else None)
              for variant, seed in members]
    engine = Engine(setups[0], [seed for _, seed in members], models[seeds[0]], per_epoch=watch is not None)
    progress = Progress(histories=[[] for _ in members])
    carry = engine.stack([engine.member_carry(state) for state in states])
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
    wall = time.perf_counter() - tick
    runs: dict[str, dict[str, Any]] = {}
    for m, (variant, seed) in enumerate(members):
        ended = "diverged" if final.diverged[m] else ("early_stopped" if final.stop.stopped[m] else "completed")
        run = runs.setdefault(variant.label, {"variant": variant.label, "values": variant.values, "group": index + 1,
                                              "parameters": models[seed].parameter_count, "members": [],
                                              "wall_time_s": wall, "train_time_s": progress.train_seconds})
        run["members"].append({"seed": seed, "ended": ended, "best_epoch": int(final.stop.best_epoch[m]),
                               "history": progress.histories[m]})
    return list(runs.values())
