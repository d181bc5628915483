"""Several seeds (or variants of one architecture) trained as one compiled program.

``jax.vmap`` over the members' carries turns K runs into one program whose
every operation is K times wider; small networks leave a CPU or GPU mostly
idle, so K members cost far less than K runs. Member ``m`` follows exactly
the run ``dlcli train`` makes with seed ``seeds[m]`` for initialisation and
shuffling (tested); the data split is the recipe's, shared by all members.
The engine freezes a member that stops early or diverges while the others
run on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from dlcli.assemble import Assembled, assemble
from dlcli.engine.compilation import Compilations, run_once
from dlcli.engine.driver import Engine, Progress
from dlcli.errors import DlcliError
from dlcli.recipe import Recipe
from dlcli.train.step import TrainState


@dataclass
class Member:
    seed: int
    monitor: str
    history: list[dict[str, Any]] = field(default_factory=list)
    ended: str = "completed"  # | early_stopped | diverged
    best_epoch: int = 0


@dataclass
class StackResult:
    members: list[Member]
    last: TrainState  # stacked (K, ...) leaves
    train_seconds: float
    compilations: dict[str, int]


def member_states(setup, seeds: list[int], recipe: Recipe | None = None,
                  adapt: Callable[[Assembled], Assembled] = lambda built: built) -> tuple[Assembled, list[TrainState]]:
    """Initialise one model per seed (as ``dlcli train --seed`` would) and ``adapt`` each.

    Returns member 0's assembly (its graphs, task and loss are shared by all)
    and every member's initial train state.
    """
    recipe = recipe or setup.recipe
    members = [adapt(assemble(recipe, setup.data.preprocessing, seed=seed)) for seed in seeds]
    shapes = [jax.tree.map(np.shape, (b.params, b.rest)) for b in members]
    if any(s != shapes[0] for s in shapes[1:]):
        raise DlcliError(f"model.kind = '{recipe.model.kind}' builds a different architecture for different seeds, "
                         "so the seeds cannot share one compiled program.")
    states = [TrainState(b.params, b.rest, run_once(setup.optimizer.init, b.params), np.zeros((), np.int32),
                         jax.random.key(seed) if setup.augment is not None else None)
              for b, seed in zip(members, seeds)]
    return members[0], states


def train_stack(engine: Engine, states: list[TrainState], reporter, label: str,
                on_record: Callable[[int, dict[str, Any]], None] = lambda m, record: None) -> StackResult:
    """Train one member per state for the recipe's epochs as one program.

    Args:
      engine: compiled for this architecture and ``len(states)`` members (reusable across stacks).
      states: from :func:`member_states`.
      reporter: progress display; it sees the members' mean per epoch.
      label: what the progress display calls this stack.
      on_record: receives (member index, epoch record) as each epoch ends.
    """
    setup = engine.setup
    counted = Compilations.start()
    progress = Progress(histories=[[] for _ in states])
    carry = engine.stack([engine.member_carry(state) for state in states])
    reporter.start(label, setup.recipe.train.epochs, engine.layout.plan.steps, engine.examples,
                   f"{len(states)} seeds in one program")
    try:
        carry = engine.run(carry, progress, reporter, lambda carry, progress: None,
                           lambda m, record, carry: on_record(m, record))
    finally:
        reporter.close()
    final = jax.device_get(carry)
    members = []
    for m, seed in enumerate(engine.seeds):
        ended = "diverged" if final.diverged[m] else ("early_stopped" if final.stop.stopped[m] else "completed")
        members.append(Member(seed, setup.stopping.monitor, progress.histories[m], ended,
                              int(final.stop.best_epoch[m])))
    return StackResult(members, final.state, progress.train_seconds, counted.since())
