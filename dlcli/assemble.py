"""From a validated recipe and fitted preprocessing to the pieces training needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from flax import nnx

from dlcli.data.preprocess import Preprocessing
from dlcli.engine.compilation import compile_tier, flops_of
from dlcli.engine.executables import kept_program, run_once, signature
from dlcli.engine.validation import DiskInputs, ShardedInputs, as_inputs, model_outputs
from dlcli.losses import LOSSES, LossFn
from dlcli.models import build_model
from dlcli.recipe import Recipe
from dlcli.tasks import Task, task_from
from dlcli.train.batches import eval_indices
from dlcli.train.step import make_predict_fn


@dataclass
class Assembled:
    task: Task
    model: nnx.Module
    train_graph: nnx.GraphDef  # dropout on, batch statistics updated
    eval_graph: nnx.GraphDef  # dropout off, running statistics used
    params: Any
    rest: Any
    loss_fn: LossFn

    @property
    def parameter_count(self) -> int:
        return int(sum(np.size(p) for p in jax.tree.leaves(self.params)))


def initialised(build: Callable[[Any], nnx.Module], seed: int, abstract: bool = False, kept: tuple | None = None
                ) -> nnx.Module:
    """The module ``build(seed)`` makes, its weights drawn by one compiled program (or only shaped, if
    ``abstract``).

    Built eagerly, every initialiser of every layer is its own small XLA
    program; under ``jit`` the whole initialisation is one, the seed its
    argument, so that later runs load it whole whatever their seed (``kept``:
    what ``build`` depends on, see :func:`dlcli.engine.executables.kept_program`).
    """
    shaped = nnx.eval_shape(lambda: build(seed))  # mistakes in [model] surface here, before any compilation
    if abstract:
        return shaped
    graphdef, _ = nnx.split(shaped)
    return nnx.merge(graphdef, run_once(lambda s: nnx.state(build(s)), np.int32(seed), kept=kept, name="model_init"))


def assemble(recipe: Recipe, pre: Preprocessing, seed: int | None = None, abstract: bool = False) -> Assembled:
    """Build the task, model (initialised from ``seed``, default the recipe's) and loss.

    With ``abstract``, the weights are shapes only: for a run whose weights come from a checkpoint.
    """
    task, build, loss_fn = components(recipe, pre)
    seed = recipe.seed if seed is None else seed
    return split_model(task, initialised(build, seed, abstract, init_depends(recipe, pre, task)), loss_fn)


def assemble_seeds(recipe: Recipe, pre: Preprocessing, seeds: list[int]) -> dict[int, Assembled]:
    """``assemble(recipe, pre, seed=s)`` for every seed, the weights of all drawn by one vmapped program
    (a stack of seeds compiles one initialisation, not one per seed)."""
    task, build, loss_fn = components(recipe, pre)
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: build(seeds[0])))
    states = run_once(jax.vmap(lambda seed: nnx.state(build(seed))), np.asarray(seeds, np.int32),
                      kept=init_depends(recipe, pre, task), name="model_init")  # (S, ...) leaves
    states = jax.device_get(states)  # one copy; indexing device arrays would dispatch a program per leaf and seed
    return {seed: split_model(task, nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf[i], states)), loss_fn)
            for i, seed in enumerate(seeds)}


def init_depends(recipe: Recipe, pre: Preprocessing, task: Task) -> tuple:
    """What a model's initialisation is a function of besides its seed (see :func:`build_model`): recipes that
    differ elsewhere share it."""
    return ("model", recipe.model, tuple(pre.input_shape), task.output_dim)


def components(recipe: Recipe, pre: Preprocessing) -> tuple[Task, Callable[[Any], nnx.Module], LossFn]:
    """(task, ``build(seed) -> model``, loss function) of a recipe."""
    task = task_from(pre, recipe.loss.kind if recipe.loss else None)
    loss = recipe.loss.kind if recipe.loss else task.default_loss
    loss_fn = LOSSES.build(loss, recipe.loss.settings() if recipe.loss else {}, task, where="[loss]")
    return task, lambda seed: build_model(recipe.model.kind, recipe.model.settings(), tuple(pre.input_shape),
                                          task.output_dim, seed), loss_fn


def split_model(task: Task, model: nnx.Module, loss_fn: LossFn) -> Assembled:
    """The evaluation graph, then the training graph and state of ``model``."""
    model.eval()
    eval_graph = nnx.graphdef(model)
    model.train()
    train_graph, params, rest = nnx.split(model, nnx.Param, ...)
    return Assembled(task, model, train_graph, eval_graph, params, rest, loss_fn)


def by_arithmetic(batches: int) -> Callable[[Any], dict | None]:
    """The XLA options of an evaluation that maps its model over ``batches`` (counted once by XLA), by the
    arithmetic of the whole pass (:data:`dlcli.engine.compilation.COMPILE_TIERS`): a pass made once should
    not spend longer compiling than running."""
    return lambda lowered: compile_tier(flops_of(lowered) * batches)[1]


class Predictor:
    """Batched, compiled forward passes in evaluation mode."""

    def __init__(self, eval_graph: nnx.GraphDef, batch_size: int = 4096, kept: tuple | None = None):
        """``kept``: what ``eval_graph`` is a function of (a recipe and its preprocessing), so that later
        runs load the evaluation programs whole (:func:`dlcli.engine.executables.kept_program`)."""
        self._predict = make_predict_fn(eval_graph)
        self.eval_graph = eval_graph
        self.batch_size = batch_size
        self.kept = kept
        self._judged = {}  # compiled programs by loss (or outputs) and argument shapes

    def judge(self, built: Assembled, params: Any, rest: Any, x: jax.Array, y: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(outputs, per-example losses, linked predictions) of ``x`` against ``y``: one compiled program.

        ``x`` is an array, or held-out rows on disk or spread over processes (:mod:`dlcli.engine.validation`).
        """
        x = as_inputs(x)
        if isinstance(x, (DiskInputs, ShardedInputs)):
            return self.judge_held(built, params, rest, x, y)
        idx, _ = eval_indices(len(x), self.batch_size)
        args = (params, rest, x, idx, y)
        program = (built.loss_fn, signature(args))
        if program not in self._judged:
            def judged(params, rest, x, idx, y):
                outputs = self._predict(params, rest, x, idx)
                outputs = outputs.reshape(-1, *outputs.shape[2:])[:len(y)]
                return outputs, built.loss_fn(outputs, y), built.task.link(outputs)

            self._judged[program] = kept_program(judged, args, self.kept, "judged", by_arithmetic(len(idx)))
        return tuple(np.asarray(a) for a in self._judged[program](*args))

    def judge_held(self, built: Assembled, params: Any, rest: Any, x, y: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`judge` of rows read from disk or spread over processes, a batch at a time where they are."""
        key = ("held", built.loss_fn, signature((x, y)))  # the rows' file or placement is in the program
        if key not in self._judged:
            def judged(params, rest, x, y):
                outputs = model_outputs(nnx.merge(self.eval_graph, params, rest), x, self.batch_size)
                return outputs, built.loss_fn(outputs, y), built.task.link(outputs)

            # never kept (it calls back into this process), compiled as the resident rows' program is
            self._judged[key] = kept_program(judged, (params, rest, x, y), None, "judged",
                                             by_arithmetic(-(-len(y) // self.batch_size)))
        return tuple(np.asarray(a) for a in self._judged[key](params, rest, x, y))

    def __call__(self, params: Any, rest: Any, x: jax.Array) -> np.ndarray:
        idx, n = eval_indices(len(x), self.batch_size)
        args = (params, rest, x, idx)
        program = ("outputs", signature(args))
        if program not in self._judged:
            self._judged[program] = kept_program(self._predict, args, self.kept, "outputs", by_arithmetic(len(idx)))
        outputs = self._judged[program](*args)  # (S, B, O) or (S, B, *input shape) for reconstructions
        return np.asarray(outputs).reshape(-1, *outputs.shape[2:])[:n]
