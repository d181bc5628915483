"""A batch's trials of one program trained as one stack, pruned by Optuna each epoch, narrowed as they fall.

Every trial reports its monitored value after each epoch; a trial the
median pruner stops is frozen in the stack (its batches weigh nothing). A
vmapped program still computes its frozen members, so once half a stack or
more is frozen, with more than half the epochs to go, the live trials move
to a stack of their own size (:class:`Narrow`): a 32-trial study of
digits-mlp-tune computed twice the trial-epochs it needed before.

What a study keeps across its batches (:class:`Kept`): the compiled engine
of each program key and stack size, and each key's setup with its initial
model. Every trial starts from the recipe's seed, and trials of one key
differ only in the numbers their state carries, so a later group of a key
needs no setup of its own: only each trial's optimizer (checking and
initialising every trial again cost a 32-trial study 0.6 s of CPU).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from dlcli.compare.carried import carried_keep, carried_strengths, program_key
from dlcli.compare.experiment import Group
from dlcli.compare.grid import Variant


@dataclass
class Kept:
    setups: dict[str, Any] = field(default_factory=dict)  # program key -> the Setup of its first group
    engines: dict[tuple[str, int], Any] = field(default_factory=dict)  # (program key, members) -> Engine

    def engine(self, key: str, setup, members: int):
        """The engine of ``key`` for a stack of ``members``, made on first use."""
        from dlcli.engine.driver import Engine

        if (key, members) not in self.engines:
            self.engines[key, members] = Engine(setup, [setup.recipe.seed] * members, setup.built, per_epoch=True,
                                                kept_as=(key,) if setup.inject else None)
        return self.engines[key, members]


class Narrow(Exception):
    """Raised between calls to move a stack's live members (``live``, stack positions) to a smaller stack."""

    def __init__(self, carry, live: list[int]):
        super().__init__(f"narrow to {len(live)} members")
        self.carry, self.live = carry, live


@dataclass
class Stack:
    """Where each trial of a group trains: ``members[m]`` is the trial at stack position m."""

    trials: list  # optuna trials, in the group's order
    monitor: str
    members: list[int]
    epochs: int  # the recipe's
    pruned: set[int] = field(default_factory=set)  # trial indices
    pending: list[int] = field(default_factory=list)  # pruned, not yet frozen
    ended: dict[int, str] = field(default_factory=dict)  # trial index -> how it ended, for trials left behind

    def on_epoch(self, member: int, record: dict[str, Any]) -> None:
        index = self.members[member]
        value = record.get(self.monitor)
        if index in self.pruned or value is None or not math.isfinite(value):
            return
        trial = self.trials[index]
        trial.report(value, record["epoch"])
        if trial.should_prune():
            self.pruned.add(index)
            self.pending.append(index)

    def between_calls(self, engine, carry, progress):
        """Freeze the trials pruned since the last call; narrow the stack when it pays (see the module)."""
        if not self.pending:
            return None
        import jax

        positions = [self.members.index(index) for index in self.pending]
        self.pending = []
        carry = engine.freeze(carry, positions)
        stopped, diverged = jax.device_get((carry.stop.stopped, carry.diverged))  # (K,), (K,)
        live = [m for m in range(len(self.members)) if not (stopped[m] or diverged[m])]
        remaining = self.epochs - progress.epoch + 1
        if live and 2 * len(live) <= len(self.members) and 2 * remaining > self.epochs:
            for m in range(len(self.members)):
                if m not in live:
                    self.ended[self.members[m]] = "diverged" if diverged[m] else "early_stopped"
            raise Narrow(carry, live)
        return carry


def trial_groups(variants: list[Variant]) -> list[Group]:
    """A batch's trials grouped by program, as compare groups variants, except that trials differing in their
    activation are programs of their own: a kept program's model has plain activation layers."""
    groups: dict[str, list[Variant]] = {}
    for variant in variants:
        recipe = variant.loaded.recipe
        key = f"{program_key(recipe)}\n# activation {recipe.model.settings().get('activation')!r}"
        groups.setdefault(key, []).append(variant)
    return [Group(members, len(members) > 1, key, kept=True) for key, members in groups.items()]


def train_trials(group: Group, trials: list, kept: Kept, index: int, monitor: str, reporter, write
                 ) -> tuple[list[dict[str, Any]], set[int]]:
    """Train a group's trials as one stack (narrowed as they are pruned); one run per trial and the pruned
    trials' indices.

    Args:
      kept: holds the setup of ``group.key`` (see :func:`dlcli.compare.experiment.prepare_groups`).
      write: ``write(variant, seed, record)`` for each epoch record as it ends.
    """
    import jax

    from dlcli.engine.driver import Diverged, Progress

    tick = time.perf_counter()
    setup = kept.setups[group.key]
    seed = setup.recipe.seed
    states = [initial_state(setup, variant.loaded.recipe) for variant in group.variants]
    stack = Stack(trials, monitor, list(range(len(states))), setup.recipe.train.epochs)
    engine = kept.engine(group.key, setup, len(states))
    carry = engine.stack([engine.member_carry(state) for state in states])
    histories: list[list[dict[str, Any]]] = [[] for _ in states]
    progress = Progress(histories=list(histories))
    label = group.variants[0].label if len(group.variants) == 1 else f"{len(group.variants)} variants"
    reporter.start(label, setup.recipe.train.epochs, engine.layout.plan.steps, engine.examples,
                   f"group {index + 1}: {len(states)} trials in one program")

    def on_epoch(m: int, record: dict[str, Any], _carry) -> None:
        write(group.variants[stack.members[m]], seed, record)
        stack.on_epoch(m, record)

    try:
        while True:
            try:
                carry = engine.run(carry, progress, reporter, lambda c, p: stack.between_calls(engine, c, p), on_epoch)
                break
            except Diverged as error:  # a one-member stack: its carry holds the last good state, marked diverged
                carry = error.carry
                break
            except Narrow as narrow:
                stack.members = [stack.members[m] for m in narrow.live]
                engine = kept.engine(group.key, setup, len(narrow.live))
                carry = engine.setup.placement.put_replicated(members_of(narrow.carry, narrow.live))
                progress = replace(progress, histories=[histories[i] for i in stack.members])
    finally:
        reporter.close()
    final = jax.device_get(carry)
    for m, trial_index in enumerate(stack.members):
        stack.ended[trial_index] = ("diverged" if final.diverged[m] else
                                    "early_stopped" if final.stop.stopped[m] else "completed")
    wall = time.perf_counter() - tick
    return [{"values": variant.values, "wall_time_s": wall,
             "members": [{"seed": seed, "ended": stack.ended[i], "history": histories[i]}]}
            for i, variant in enumerate(group.variants)], stack.pruned


def members_of(carry, live: list[int]):
    """The stack positions ``live`` of a stacked carry, taken on the host: indexing on the device compiled
    a program per leaf shape."""
    import jax
    import numpy as np

    def take(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return leaf[np.asarray(live)]  # key arrays have no numpy form
        return np.asarray(leaf)[live]

    return jax.tree.map(take, carry)


def initial_state(setup, recipe):
    """A trial's state: the kept initial weights, its own optimizer's state and its carried numbers."""
    import jax
    import numpy as np

    from dlcli.engine.executables import run_once
    from dlcli.optim import build_optimizer
    from dlcli.train.step import TrainState

    built, steps = setup.built, setup.plan.steps  # as prepare() builds a carried optimizer
    optimizer = build_optimizer(recipe.optimizer, steps * recipe.train.epochs, steps, inject=True)
    return TrainState(built.params, built.rest, run_once(optimizer.init, built.params),
                      np.zeros((), np.int32), jax.random.key(recipe.seed) if setup.augment is not None else None,
                      carried_strengths(recipe), carried_keep(recipe))
