"""The host side of the engine: which rows each call runs, and what the host does between calls.

Between calls the driver turns the device's per-epoch records into epoch
records (metrics.jsonl lines, progress display), and lets its caller
checkpoint and honour Ctrl-C. A call runs as many rows as fit about
:data:`CALL_SECONDS` of training (and :data:`MAX_ROWS` at most), so a small
data set trains dozens of epochs per call while Ctrl-C and checkpoints still
come within a fraction of a second; the first call runs one row, since it
also compiles. The rows themselves come from :mod:`dlcli.engine.rows`.
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

from dlcli.assemble import Predictor
from dlcli.engine import executables
from dlcli.engine.compilation import COMPILE_TIERS, TRAIN_PROGRAM, compile_tier, flops_of, uncounted
from dlcli.engine.program import MAX_GATHERED_BYTES, Carry, EpochSpec, make_block_fn
from dlcli.engine.rows import FedRows, ResidentRows, advanced
from dlcli.engine.stopping import initial_stop_state
from dlcli.heap import release_freed_memory
from dlcli.train.batches import Plan, fed_plan, make_plan
from dlcli.train.step import TrainState
from dlcli.train.task_steps import make_task_step

SMALL_EPOCH = 1 << 16  # examples (x members) up to which an epoch is one row and calls run several epochs
LARGE_EPOCH_ROWS = 4  # rows (chunks) of a larger epoch, so that progress moves and Ctrl-C is prompt
ROW_BUDGET = 1 << 20  # gather indices one call may carry
MAX_ROWS = 64
CALL_SECONDS = 0.25


@dataclass
class Progress:
    """Where a stack stands; saved with its checkpoint so ``--resume`` continues exactly."""

    epoch: int = 1  # the epoch in progress, from 1
    chunk: int = 0  # rows of that epoch already run
    epoch_seconds: float = 0.0
    train_seconds: float = 0.0
    histories: list[list[dict[str, Any]]] = field(default_factory=lambda: [[]])
    finished: bool = False

    def snapshot(self) -> "Progress":
        """A copy cheap enough for every save: records are never changed once appended."""
        return Progress(self.epoch, self.chunk, self.epoch_seconds, self.train_seconds,
                        [list(h) for h in self.histories], self.finished)

    @property
    def history(self) -> list[dict[str, Any]]:
        """A single run's history (member 0's)."""
        return self.histories[0]

    @property
    def position(self) -> str:
        return f"epoch {self.epoch}" + (f", after chunk {self.chunk}" if self.chunk else "")


@dataclass(frozen=True)
class Layout:
    """How epochs map to rows and rows to calls."""

    plan: Plan  # steps per row = plan.steps_per_chunk; rows per epoch = plan.chunks
    rows_per_call: int  # G, fixed in the compiled program

    @property
    def rows_per_epoch(self) -> int:
        return self.plan.chunks


def make_layout(examples: int, batch_size: int | str, chunks: int | None, members: int, per_epoch_host: bool
                ) -> Layout:
    """Small epochs run whole, several per call; large ones (or ``train.chunks_per_epoch``) in chunks, one per call."""
    if chunks is None:
        chunks = 1 if examples * members <= SMALL_EPOCH else LARGE_EPOCH_ROWS
    plan = make_plan(examples, batch_size, chunks)
    if plan.chunks > 1 or per_epoch_host:
        return Layout(plan, 1)
    indices = members * plan.steps_per_chunk * plan.batch_size
    return Layout(plan, int(np.clip(ROW_BUDGET // indices, 1, MAX_ROWS)))


class Diverged(Exception):
    """A member's loss became NaN or infinite; ``where`` says where (epoch, step, last finite loss)."""

    def __init__(self, member: int, epoch: int, step: int, steps: int, last_finite: float):
        self.member = member
        self.where = {"epoch": epoch, "step": step, "last_finite_loss": last_finite}
        super().__init__(f"the loss became NaN or infinite in epoch {epoch}, step {step} of {steps}; the last finite "
                         f"loss was {last_finite:.6g}")


class Engine:
    """One compiled program for a stack of members sharing data, optimizer and architecture.

    Args:
      setup: from :func:`dlcli.train.setup.prepare`.
      seeds: one member per seed; member m shuffles as a run seeded ``seeds[m]``.
      built: the architecture (default the setup's).
      epoch_extras: per-member fields added to each epoch record, computed on the host from the
        stacked state after the epoch (e.g. gradient norms); then calls run one epoch each.
      per_epoch: calls run one epoch each, so that the caller can act on every epoch's records before
        the next (a tuning study prunes members there).
      kept_as: what the programs are a function of instead of the setup's recipe (a comparison's program
        key, whose carried numbers are data, and the architecture of ``built``), so that later runs load
        them whole; by default only programs of the setup's own architecture are kept.
    """

    def __init__(self, setup, seeds: list[int], built=None,
                 epoch_extras: Callable[[TrainState], list[dict[str, Any]]] | None = None, per_epoch: bool = False,
                 kept_as: tuple | None = None):
        recipe, data = setup.recipe, setup.data
        self.setup, self.seeds, self.built = setup, list(seeds), built or setup.built
        placement, feed = setup.placement, data.feed
        if feed is not None:
            self.examples = feed.examples
            self.layout = Layout(fed_plan(feed, recipe.train.batch_size, recipe.train.chunks_per_epoch,
                                          jax.process_count()), 1)
            self.source = FedRows(feed, self.layout.plan, placement, recipe.train.epochs, data.splits,
                                  tuple(data.preprocessing.input_shape))
        else:
            self.examples = len(data.splits["train"][0])
            self.layout = make_layout(self.examples, recipe.train.batch_size, recipe.train.chunks_per_epoch,
                                      len(seeds), epoch_extras is not None or setup.per_epoch_figures or per_epoch)
            self.source = ResidentRows(self, setup.device_inputs("train"),
                                       placement.put_replicated(data.splits["train"][1]))
        self.epoch_extras = epoch_extras
        # What the programs kept across runs (dlcli.engine.executables) depend on besides their arguments'
        # shapes: ``kept_as``, else the setup's recipe (when ``built`` is the setup's own architecture), and
        # the preprocessing fitted to the data. Not kept: programs of streamed or multi-process runs, whose
        # validation calls back into this process.
        self.kept = None
        if feed is None and jax.process_count() == 1 and executables.folder() is not None:
            if kept_as is None and (built is None or built is setup.built):
                kept_as = (executables.traced(recipe),)
            if kept_as is not None:
                self.kept = (*kept_as, data.preprocessing, setup.inject)
        self.step = step = make_task_step(self.built.train_graph, self.built.loss_fn, setup.optimizer,
                                          self.built.task, recipe.train.l1, recipe.train.l2, setup.augment)
        self.spec = EpochSpec(self.built.task, self.built.loss_fn, self.built.eval_graph, setup.wanted,
                              setup.stopping, setup.schedule)
        self.program = make_block_fn(step, self.spec, len(seeds), fed=feed is not None)
        self._compiled, self.compile_seconds, self.compiled_for = None, 0.0, ""
        self._zero_sums = None  # the step's sums, zeroed (see member_carry)
        self._traced_step = None  # see traced_step
        self.first_call_done: float | None = None  # time.time() when the first call returned
        self.predictor = Predictor(self.built.eval_graph, kept=self.kept)
        self.val = (setup.device_inputs("val"), placement.put_replicated(data.splits["val"][1])) \
            if "val" in data.splits else None
        self.diverged = np.zeros(len(seeds), bool)  # members frozen by a NaN loss
        order = ["loss", "accuracy", "val_loss", *(f"val_{name}" for name in setup.wanted), "learning_rate"]
        self.key_order = {key: i for i, key in enumerate(order)}

    @property
    def members(self) -> int:
        return len(self.seeds)

    def stack(self, carries: list[Carry]) -> Carry:
        """One carry per member, stacked on a leading (K,) axis and placed on the devices."""
        return self.setup.placement.put_replicated(stack_trees(carries))

    def member_carry(self, state: TrainState) -> Carry:
        if self._zero_sums is None:  # the same for every member: traced once, not once per member
            self._zero_sums = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), self.kept_sum_shapes(state))
        return Carry(state, state, initial_stop_state(self.setup.stopping), self._zero_sums, np.int32(1),
                     np.bool_(False))

    def program_key(self, kind: str, arguments: Any) -> str | None:
        """The key of this engine's ``kind`` of program in :mod:`dlcli.engine.executables` (None: not kept)."""
        if self.kept is None:
            return None
        return executables.key_of(kind, *self.kept, self.layout, self.members, MAX_GATHERED_BYTES, COMPILE_TIERS,
                                  executables.signature(arguments))

    def kept_sum_shapes(self, state: TrainState) -> dict[str, Any]:
        """:meth:`sum_shapes`, recalled from an earlier run of the same program when there was one."""
        key = self.program_key("sums", state)
        shapes = executables.recall(key) if key else None
        if shapes is None:
            shapes = self.sum_shapes(state)
            if key:
                executables.keep(key, shapes)
        return shapes

    def freeze(self, carry: Carry, members: list[int]) -> Carry:
        """``carry`` with ``members`` stopped: from the next call their batches weigh nothing (the others
        train on unchanged), and once every member stopped the run ends."""
        stopped = np.asarray(jax.device_get(carry.stop.stopped)).copy()  # (K,)
        stopped[members] = True
        stop = carry.stop._replace(stopped=self.setup.placement.put_replicated(stopped))
        return carry._replace(stop=stop)

    def sum_shapes(self, state: TrainState) -> dict[str, Any]:
        """The shapes of the sums a step collects (loss, count, correct, ...), traced, not run."""
        return self.traced_step(state).out_info[1]

    def traced_step(self, state: TrainState):
        """One member's step traced for one batch, not run: the sums it collects (:meth:`sum_shapes`) and its
        arithmetic (:meth:`training_flops`) come from this one trace."""
        if self._traced_step is None:
            size = self.layout.plan.batch_size
            x, y = (jax.ShapeDtypeStruct((size, *a.shape[1:]), a.dtype) for a in self.source.example())
            self._traced_step = jax.jit(self.step).trace(state, x, y, jax.ShapeDtypeStruct((size,), np.float32))
        return self._traced_step

    def run(self, carry: Carry, progress: Progress, reporter, between_calls: Callable[[Carry, Progress], Carry | None],
            on_epoch: Callable[[int, dict[str, Any], Carry], None] = lambda m, record, carry: None,
            ) -> Carry:
        """Train from ``progress`` to the last epoch (or until every member stopped or diverged).

        ``between_calls(carry, progress)`` runs before each call (checkpoints,
        Ctrl-C) and may return a new carry (e.g. :meth:`freeze`'s);
        ``on_epoch(member, record, carry)`` runs after each finished epoch.
        A single run raises :class:`Diverged` with ``carry`` at the last good state.
        """
        self.diverged = np.zeros(self.members, bool)  # of this run: an engine may serve several stacks
        try:
            return self._train(carry, progress, reporter, between_calls, on_epoch)
        finally:
            self.source.close()  # a feed's background reading ends with the run

    def _train(self, carry: Carry, progress: Progress, reporter, between_calls, on_epoch) -> Carry:
        recipe, plan = self.setup.recipe, self.layout.plan
        epochs, per_row = recipe.train.epochs, None
        while not progress.finished:
            replaced = between_calls(carry, progress)
            if replaced is not None:
                carry = replaced
                if np.all(jax.device_get(carry.stop.stopped | carry.diverged)):  # every member frozen
                    progress.finished = True
                    break
            if self._compiled is None and self.source.shapes() is not None:
                # A feed's chunk shapes are known before any is read: compiled now, the compiler's working
                # memory is handed back before this process reads its share of the data (ArrayFeed.read_later)
                self.compiled((carry, (), self.val, self.source.shapes(), np.zeros(1, bool), np.ones(1, bool)))
            remaining = (epochs - progress.epoch + 1) * plan.chunks - progress.chunk
            count = 1 if per_row is None else int(np.clip(CALL_SECONDS / max(per_row, 1e-9), 1,
                                                          self.layout.rows_per_call))
            count = min(count, remaining)
            data, rows, ends, active = self.source.rows(progress.epoch, progress.chunk, count,
                                                        self.layout.rows_per_call)
            args = (carry, data, self.val, rows, ends, active)
            program = self.compiled(args)
            tick = time.perf_counter()
            carry, outs = program(*args)
            self.source.prefetch(*advanced(progress.epoch, progress.chunk, count, plan.chunks))  # while it runs
            outs = jax.device_get(outs)
            if self.first_call_done is None:
                self.first_call_done = time.time()
            seconds = time.perf_counter() - tick
            per_row = seconds / count
            self.absorb(outs, count, seconds, progress, reporter, on_epoch, carry)
        return carry

    def compiled(self, args: tuple) -> Callable:
        """The training program compiled ahead of the first call (or loaded from the cache), timed on its own,
        so that no epoch's time includes compiling.

        The options follow the run's arithmetic (:data:`COMPILE_TIERS`): optimising a trivial run costs
        more compile time than it could save.
        """
        if self._compiled is None:
            tick = time.perf_counter()
            key = self.program_key("block", args)
            loaded = executables.load_executable(key, TRAIN_PROGRAM) if key else None
            if loaded is not None:
                self._compiled, self.compiled_for = loaded
            else:
                lowered = self.program.lower(*args)
                flops = self.training_flops(args[0])
                self.compiled_for, options = compile_tier(flops)
                self._compiled = (executables.compile_and_keep(lowered, options, key, self.compiled_for) if key
                                  else lowered.compile(options))
            release_freed_memory()  # the compiler's working memory, kept by the C heap otherwise
            self.compile_seconds = time.perf_counter() - tick
        return self._compiled

    def training_flops(self, carry: Carry) -> float:
        """XLA's estimate of the whole run's training arithmetic: one member's step, lowered on its own, times
        every step of every member. (The block's own estimate counts a loop body once, and with it an epoch
        end per step: evaluating HIGGS's 200k held-out events made a 1-epoch run look 20x larger.)"""
        steps = self.layout.plan.padded_steps * self.setup.recipe.train.epochs
        state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), carry.state)
        with uncounted():
            lowered = self.traced_step(state).lower()
        return flops_of(lowered) * steps * self.members

    def absorb(self, outs: dict[str, Any], count: int, seconds: float, progress: Progress, reporter,
               on_epoch, carry) -> None:
        """Turn one call's per-row outputs into epoch records and advance ``progress``."""
        plan, epochs = self.layout.plan, self.setup.recipe.train.epochs
        for g in range(count):
            progress.epoch_seconds += seconds / count
            reporter.advance(plan.steps_per_chunk)
            extras = self.epoch_extras(carry.state) if self.epoch_extras and outs["ended"][g].any() else None
            for m in range(self.members):
                if outs["diverged"][g, m]:
                    step = progress.chunk * plan.steps_per_chunk + int(outs["nonfinite_at"][g, m]) + 1
                    last = float(outs["last_finite_loss"][g, m])
                    if not math.isfinite(last) and progress.histories[m]:
                        last = progress.histories[m][-1]["loss"]
                    error = Diverged(m, progress.epoch, step, plan.steps, last)
                    if self.members == 1:
                        error.carry = carry  # the member is at its last good state (the old carry was donated)
                        raise error
                    reporter.note(f"member {m} (seed {self.seeds[m]}) diverged: {error}")
                if outs["ended"][g, m]:
                    record = self.record(outs["record"], g, m, progress)
                    record.update(extras[m] if extras else {})
                    progress.histories[m].append(record)
                    on_epoch(m, record, carry)
                    if outs["stopped"][g, m] and self.members == 1:
                        rule = self.setup.stopping
                        reporter.note(f"early stopping: {rule.monitor} did not improve by more than "
                                      f"{rule.min_delta} for {rule.patience} epochs")
            progress.chunk += 1
            if progress.chunk == plan.chunks:
                self.end_epoch(outs, g, progress, reporter)
            self.diverged |= outs["diverged"][g]
            if (outs["stopped"][g] | self.diverged).all() or progress.epoch > epochs:
                progress.finished = True
                return

    def end_epoch(self, outs: dict[str, Any], g: int, progress: Progress, reporter) -> None:
        live = [h[-1] for m, h in enumerate(progress.histories) if outs["ended"][g, m]]
        if live:
            reporter.epoch(live[0] if len(live) == 1 else mean_record(live))
        progress.train_seconds += progress.epoch_seconds
        progress.epoch, progress.chunk, progress.epoch_seconds = progress.epoch + 1, 0, 0.0

    def record(self, rows: dict[str, np.ndarray], g: int, m: int, progress: Progress) -> dict[str, Any]:
        """One member's epoch record: the device's numbers, then time and speed (NaN metrics left out)."""
        record: dict[str, Any] = {"epoch": progress.epoch}
        for key, values in sorted(rows.items(), key=lambda item: self.key_order.get(item[0], 1.5)):
            value = float(values[g, m])
            if math.isfinite(value) or not key.startswith("val_") or key == "val_loss":
                record[key] = value
        seconds = max(progress.epoch_seconds, 1e-9)
        record.update(time_s=seconds, samples_per_s=self.examples / seconds)
        return record


def stack_trees(trees: list[Any]) -> Any:
    """Leaves stacked on a new leading axis; on the host, so that no shape needs a compiled stack."""

    def stack(*leaves):
        if jax.dtypes.issubdtype(getattr(leaves[0], "dtype", np.float32), jax.dtypes.prng_key):
            return jnp.stack(leaves)  # key arrays have no numpy form
        return np.stack([np.asarray(leaf) for leaf in leaves])

    return jax.tree.map(stack, *trees)


def mean_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The members' mean of every number in an epoch record (what the progress display shows)."""
    keys = [k for k, v in records[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: (records[0][k] if k == "epoch" else float(np.mean([r[k] for r in records]))) for k in keys}
