"""Everything a run needs, built and checked before any file is written.

:func:`prepare` loads the data and builds the model, loss, optimizer,
schedule, early stopping and augmentation from a validated recipe. Every
user mistake a recipe or its data can hold surfaces here, as a
:class:`DlcliError`, before training starts and before a run directory
exists (the fuzz tests drive this path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from dlcli.assemble import Assembled, assemble
from dlcli.data import Prepared, load_data
from dlcli.data.augment import build_augment
from dlcli.data.spill import SpilledRows
from dlcli.data.splits import ProcessShare
from dlcli.engine.compilation import Compilations
from dlcli.engine.compilation import configure as configure_compilation
from dlcli.engine.executables import run_once
from dlcli.engine.validation import DiskInputs, shard_held_out
from dlcli.errors import DlcliError, choices_text
from dlcli.tasks import task_named
from dlcli.optim import build_optimizer, build_schedule
from dlcli.recipe import LoadedRecipe, Recipe
from dlcli.train.batches import Plan, fed_plan, make_plan
from dlcli.train.early_stopping import EarlyStopping
from dlcli.train.penalties import check_penalties
from dlcli.train.sharding import Placement, placement_for
from dlcli.train.step import TrainState


@dataclass
class Setup:
    loaded: LoadedRecipe
    data: Prepared
    built: Assembled
    wanted: list[str]  # metrics reported each epoch
    plan: Plan
    optimizer: Any  # optax.GradientTransformation
    schedule: Callable[[int], Any]
    stopping: EarlyStopping
    augment: Callable | None  # (key, x) -> x, on the device
    placement: Placement  # the devices training runs on
    compilations: Compilations  # counted from the start of prepare()
    inject: bool = False  # the optimizer's numbers live in its state (see prepare)
    _placed: dict[str, jax.Array] = field(default_factory=dict, repr=False)

    @property
    def recipe(self) -> Recipe:
        return self.loaded.recipe

    @property
    def per_epoch_figures(self) -> bool:
        """The task draws after every epoch (a GAN's samples), so the host needs each epoch's state."""
        return self.built.task.draws_every_epoch(tuple(self.data.preprocessing.input_shape))

    @property
    def optimizer_kept(self) -> tuple:
        """What the optimizer is built from (see :func:`dlcli.optim.build_optimizer`), so that its
        initialisation is kept across runs (:func:`dlcli.engine.executables.run_once`)."""
        return (self.recipe.optimizer, self.plan.steps, self.recipe.train.epochs, self.inject)

    def initial_state(self) -> TrainState:
        """The state before the first step: initial weights, fresh optimizer, augmentation key from the seed."""
        key = jax.random.key(self.recipe.seed) if self.augment is not None else None
        return TrainState(self.built.params, self.built.rest,
                          run_once(self.optimizer.init, self.built.params, kept=self.optimizer_kept,
                                   name="optimizer_init"),
                          np.zeros((), np.int32), key)

    def device_inputs(self, split: str) -> jax.Array:
        """A split's inputs on the training devices, placed once and reused every epoch: resident, read from
        disk, or each process's share of them (:mod:`dlcli.engine.validation`)."""
        if split not in self._placed:
            x = self.data.splits[split][0]
            if isinstance(x, ProcessShare):
                self._placed[split] = shard_held_out(x.release(), self.placement.mesh)
            elif isinstance(x, SpilledRows):
                self._placed[split] = DiskInputs(x)
            else:
                self._placed[split] = self.placement.put_replicated(x)
        return self._placed[split]


def check_metrics(recipe: Recipe, task_kind: str) -> list[str]:
    valid = task_named(task_kind).metric_names
    unknown = [m for m in recipe.evaluate.metrics if m not in valid]
    if unknown:
        raise DlcliError(f"evaluate.metrics: unknown metric(s) {', '.join(map(repr, unknown))} for a {task_kind} "
                         f"task. Valid: {choices_text(valid)}.")
    return list(recipe.evaluate.metrics)


def check_monitor(monitor: str, has_val: bool, metric_names: list[str], train_metrics: list[str] | None = None,
                  key: str = "train.early_stopping.monitor") -> None:
    """The monitor must be a key every epoch record has, or it would read NaN and never improve.

    Args:
      metric_names: the metrics computed on the validation split (``val_<name>``).
      train_metrics: those the training sums give (``accuracy`` for classification);
        default ``metric_names``.
      key: the recipe key that named the monitor, for the message.
    """
    train_metrics = metric_names if train_metrics is None else train_metrics
    valid = list(dict.fromkeys(["loss", *train_metrics] + (["val_loss", *(f"val_{m}" for m in metric_names)]
                                                          if has_val else [])))
    if monitor not in valid:
        hint = ""
        if monitor.startswith("val_"):
            hint = (f" (add '{monitor[4:]}' to evaluate.metrics to compute it on the validation split)"
                    if has_val else " (there is no validation split: set data.validation_split > 0)")
        raise DlcliError(f"{key} = '{monitor}' is not a tracked metric{hint}. Valid: {choices_text(valid)}.")


def train_metrics_of(wanted: list[str]) -> list[str]:
    """Metrics the training sums give: accuracy, for classification only (whose metrics include accuracy or auc)."""
    return ["accuracy"] if {"accuracy", "auc"} & set(wanted) else []


def make_stopping(recipe: Recipe, has_val: bool, wanted: list[str]) -> EarlyStopping:
    config = recipe.train.early_stopping
    monitor = config.monitor if config else ("val_loss" if has_val else "loss")
    stopping = EarlyStopping(monitor=monitor, mode=EarlyStopping.resolve_mode(monitor, config.mode if config else "auto"),
                             patience=config.patience if config else None, min_delta=config.min_delta if config else 0.0)
    check_monitor(monitor, has_val, list(wanted), train_metrics_of(wanted))
    return stopping


def prepare(loaded: LoadedRecipe, data: Prepared | None = None, inject: bool = False,
            shapes_only: bool = False) -> Setup:
    """Load the recipe's data and build every component; raises DlcliError for any mistake in them.

    Args:
      data: the recipe's data, already loaded (variants of a comparison that share ``[data]``).
      inject: build the optimizer with its numbers in its state (see :func:`dlcli.optim.build_optimizer`).
      shapes_only: check the model but give its weights as shapes only (a member of a stack whose first
        member's weights and program serve all).
    """
    configure_compilation()
    compilations = Compilations.start()
    recipe = loaded.recipe
    data = data or load_data(recipe.data, recipe.seed, loaded.resolve_path, task=recipe.task)
    built = assemble(recipe, data.preprocessing, abstract=shapes_only)
    wanted = check_metrics(recipe, built.task.kind) or built.task.default_metrics
    plan = (make_plan(data.train_examples, recipe.train.batch_size, recipe.train.chunks_per_epoch or 1)
            if data.feed is None else fed_plan(data.feed, recipe.train.batch_size, recipe.train.chunks_per_epoch,
                                               jax.process_count()))
    total_steps = plan.steps * recipe.train.epochs
    optimizer = build_optimizer(recipe.optimizer, total_steps, plan.steps, inject=inject)
    schedule = build_schedule(recipe.optimizer, total_steps)
    stopping = make_stopping(recipe, "val" in data.splits, wanted)
    augment = build_augment(recipe.train.augment, data.preprocessing.input_shape)
    check_penalties(built.params, recipe.train.l1, recipe.train.l2)
    return Setup(loaded, data, built, wanted, plan, optimizer, schedule, stopping, augment,
                 placement_for(plan.batch_size * jax.process_count() if data.feed is not None else plan.batch_size),
                 compilations, inject)


def checkpoint_bytes(state: Any) -> int:
    """Disk a run's checkpoints need at most: last (state + best) and best, each swapped through a copy."""
    size = sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(state)
               if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key))
    return 6 * size + (1 << 20)
