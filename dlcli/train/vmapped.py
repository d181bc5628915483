"""Several seeds of one recipe trained as one compiled program.

``jax.vmap`` over the training state (parameters, optimizer state, RNG
counters) and over the batch order turns M runs into one program whose
every operation is M times wider. Small networks leave a CPU or GPU mostly
idle, so M members cost far less than M runs, and the program compiles once.

Member ``m`` follows exactly the run ``dlcli train`` makes with seed
``seeds[m]`` for initialisation and shuffling (tested); the data split is
the recipe's, shared by all members. A member that stops early or diverges
is frozen by giving its batches zero weight, which the step already treats
as "leave the state untouched", so the others run on unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcli.assemble import Assembled, assemble
from dlcli.errors import DlcliError
from dlcli.evaluate import epoch_metrics, outputs_report
from dlcli.recipe import Recipe
from dlcli.train.batches import Plan, epoch_indices, eval_indices, make_plan
from dlcli.train.early_stopping import EarlyStopping
from dlcli.train.setup import Setup, make_stopping
from dlcli.train.step import TrainState, make_chunk_fn, make_predict_fn, make_train_step


@dataclass
class Stack:
    """M models of one architecture; every leaf of ``state`` has a leading (M,) axis."""

    built: Assembled  # member 0's; graphs, task and loss are shared by all members
    state: TrainState
    seeds: list[int]


@dataclass
class Member:
    seed: int
    stopping: EarlyStopping
    history: list[dict[str, Any]] = field(default_factory=list)
    ended: str = "running"  # -> completed | early_stopped | diverged


@dataclass
class StackResult:
    members: list[Member]
    last: TrainState  # stacked; each member's best epoch is in its stopping.best_epoch
    train_seconds: float
    compilations: int


def stack_trees(trees: list[Any]) -> Any:
    """Leaves stacked on a new leading axis; on the host, so that no shape needs a compiled stack."""

    def stack(*leaves):
        if jax.dtypes.issubdtype(leaves[0].dtype, jax.dtypes.prng_key):
            return jnp.stack(leaves)  # key arrays have no numpy form
        return jax.device_put(np.stack([np.asarray(leaf) for leaf in leaves]))

    return jax.tree.map(stack, *trees)


def member_tree(tree: Any, m: int) -> Any:
    return jax.tree.map(lambda leaf: leaf[m], tree)


def build_stack(setup: Setup, seeds: list[int], recipe: Recipe | None = None,
                adapt: Callable[[Assembled], Assembled] = lambda built: built) -> Stack:
    """Initialise one model per seed (as ``dlcli train --seed`` would), ``adapt`` each, and stack their states.

    Args:
      setup: from :func:`dlcli.train.setup.prepare`: data, optimizer, plan, shared by every member.
      seeds: one member per seed.
      recipe: the recipe to build the models from (default the setup's; a variant may change ``[model]``).
      adapt: applied to each member's assembled model before its state is split off.
    """
    recipe = recipe or setup.recipe
    members = [adapt(assemble(recipe, setup.data.preprocessing, seed=seed)) for seed in seeds]
    shapes = [jax.tree.map(jnp.shape, (b.params, b.rest)) for b in members]
    if any(s != shapes[0] for s in shapes[1:]):
        raise DlcliError(f"model.kind = '{recipe.model.kind}' builds a different architecture for different seeds, "
                         "so the seeds cannot share one compiled program.")
    params = stack_trees([b.params for b in members])
    rest = stack_trees([b.rest for b in members])
    keys = stack_trees([jax.random.key(seed) for seed in seeds]) if setup.augment is not None else None
    state = TrainState(params, rest, jax.vmap(setup.optimizer.init)(params), jnp.zeros((len(seeds),), jnp.int32),
                       keys)
    return Stack(members[0], state, list(seeds))


@dataclass
class Programs:
    """The compiled functions of one architecture; stacks that share it reuse the compilations."""

    run_chunk: Callable
    predict: Callable[[Any, Any, Any], np.ndarray]


def make_programs(setup: Setup, built: Assembled) -> Programs:
    """The vmapped chunk (the step of :mod:`dlcli.train.step`, unchanged) and evaluation functions."""
    recipe = setup.recipe
    step = make_train_step(built.train_graph, built.loss_fn, setup.optimizer, built.task, recipe.train.l1,
                           recipe.train.l2, setup.augment)
    return Programs(make_chunk_fn(jax.vmap(step)), make_stacked_predict(built))


def make_stacked_predict(built: Assembled, batch_size: int = 4096) -> Callable[[Any, Any, Any], np.ndarray]:
    """``predict(params, rest, x) -> (M, N, O)`` outputs of every member, in evaluation mode."""
    predict = jax.jit(jax.vmap(make_predict_fn(built.eval_graph), in_axes=(0, 0, None, None)))

    def outputs(params, rest, x):
        idx, n = eval_indices(len(x), batch_size)
        out = np.asarray(predict(params, rest, x, idx))  # (M, S, B, O)
        return out.reshape(out.shape[0], -1, out.shape[-1])[:, :n]

    outputs.compilations = predict._cache_size
    return outputs


def stacked_epoch_indices(n: int, plan: Plan, seeds: list[int], epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunks, steps_per_chunk, M, B) indices and weights: member m shuffles as a run seeded ``seeds[m]``."""
    pairs = [epoch_indices(n, plan, seed, epoch) for seed in seeds]
    return np.stack([p[0] for p in pairs], axis=2), np.stack([p[1] for p in pairs], axis=2)


SMALL_EPOCH = 1 << 20  # gathered examples (members x epoch) that one chunk may hold


def stack_plan(setup: Setup, members: int) -> Plan:
    """How M members cut an epoch into chunks.

    A chunk gathers its batches for every member, M times what one run
    gathers, so a big epoch gets M times the recipe's chunks. A small one runs
    as one chunk: rounding an epoch into several chunks pads it with
    all-padding steps (13 steps -> 4 chunks of 4), which leave the state as it
    was, so results do not change -- except with augmentation, where every
    step draws a key: there the recipe's own chunks are kept.
    """
    n = len(setup.data.splits["train"][0])
    if setup.augment is not None:
        return setup.plan
    chunks = 1 if n * members <= SMALL_EPOCH else setup.plan.chunks * members
    return make_plan(n, setup.recipe.train.batch_size, chunks)


def train_stack(setup: Setup, stack: Stack, reporter, label: str, programs: Programs | None = None,
                on_record: Callable[[int, dict[str, Any]], None] = lambda m, record: None,
                after_epoch: Callable[[TrainState], list[dict[str, Any]]] | None = None) -> StackResult:
    """Train every member of ``stack`` for the recipe's epochs as one vmapped program.

    Args:
      setup: data (split by the recipe's seed), optimizer, plan and stopping rule shared by all members.
      stack: from :func:`build_stack`.
      reporter: progress display; it sees the members' mean per epoch.
      label: what the progress display calls this stack.
      programs: compiled functions to reuse (from :func:`make_programs` for this architecture).
      on_record: receives (member index, epoch record) as each epoch ends.
      after_epoch: extra per-member fields for the epoch records (e.g. gradient norms).
    """
    recipe, data, wanted = setup.recipe, setup.data, setup.wanted
    built, state, seeds = stack.built, stack.state, stack.seeds
    x_train, y_train = data.splits["train"]
    plan = stack_plan(setup, len(seeds))
    members = [Member(seed, make_stopping(recipe, "val" in data.splits, wanted)) for seed in seeds]
    programs = programs or make_programs(setup, built)
    run_chunk, predict = programs.run_chunk, programs.predict
    x_all, y_all = jax.device_put(x_train), jax.device_put(y_train)
    x_val = jax.device_put(data.splits["val"][0]) if "val" in data.splits else None
    train_seconds = 0.0
    reporter.start(label, recipe.train.epochs, plan.steps, len(x_train), f"{len(seeds)} seeds in one program")
    try:
        for epoch in range(1, recipe.train.epochs + 1):
            tick = time.perf_counter()
            idx, weight = stacked_epoch_indices(len(x_train), plan, seeds, epoch)
            sums = np.zeros(len(seeds)), np.zeros(len(seeds)), np.zeros(len(seeds))  # loss, count, correct
            for chunk in range(plan.chunks):
                weight[chunk:, :, [m.ended != "running" for m in members]] = 0.0  # frozen members
                state, chunk_sums = run_chunk(state, x_all, y_all, idx[chunk], weight[chunk])
                chunk_sums = jax.device_get(chunk_sums)
                sums = tuple(s + np.asarray(chunk_sums.get(k, 0.0)) for s, k in zip(sums, ("loss", "count", "correct")))
                reporter.advance(plan.steps_per_chunk)
                for m, member in enumerate(members):
                    if member.ended == "running" and not math.isfinite(sums[0][m]):
                        member.ended = "diverged"
            seconds = time.perf_counter() - tick
            train_seconds += seconds
            live = [m for m, member in enumerate(members) if member.ended == "running"]
            logits = predict(state.params, state.rest, x_val) if x_val is not None else None
            extra = after_epoch(state) if after_epoch else [{} for _ in members]
            steps, scales = np.asarray(state.step), plateau_scales(state.opt_state, len(members))
            for m in live:
                record = {"epoch": epoch, "loss": float(sums[0][m] / sums[1][m])}
                if "correct" in chunk_sums:
                    record["accuracy"] = float(sums[2][m] / sums[1][m])
                if logits is not None:
                    report = outputs_report(built.task, built.loss_fn, logits[m], data.splits["val"][1],
                                            data.preprocessing.classes)
                    record.update(epoch_metrics(report, wanted, "val_"))
                rate = float(setup.schedule(int(steps[m]) - 1)) * float(scales[m])
                record.update(learning_rate=rate, time_s=seconds,
                              samples_per_s=len(x_train) / seconds, **extra[m])
                members[m].history.append(record)
                on_record(m, record)
                _, stop = members[m].stopping.update(epoch, record.get(members[m].stopping.monitor, math.nan))
                if stop:
                    members[m].ended = "early_stopped"
            if live:
                reporter.epoch(mean_record([members[m].history[-1] for m in live]))
            if all(member.ended != "running" for member in members):
                break
    finally:
        reporter.close()
    for member in members:
        member.ended = "completed" if member.ended == "running" else member.ended
    return StackResult(members, state, train_seconds, run_chunk._cache_size())


def plateau_scales(opt_state: Any, members: int) -> np.ndarray:
    """Each member's reduce-on-plateau learning-rate factor (ones without it), as ``learning_rate_scale`` reads it."""
    import optax.tree_utils as otu

    scale = otu.tree_get(opt_state, "scale")
    return np.ones(members) if scale is None else np.asarray(scale).reshape(members)


def mean_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The members' mean of every number in an epoch record (what the progress display shows)."""
    keys = [k for k, v in records[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: (records[0][k] if k == "epoch" else float(np.mean([r[k] for r in records]))) for k in keys}
