"""What every task answers; each task kind is a subclass in a module of its own.

Methods that compute on outputs import jax where they run: data preparation
and recipe checks ask a task about its targets without loading jax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import jax
    import optax
    from flax import nnx

    from dlcli.data.preprocess import Preprocessing


@dataclass(frozen=True)
class Task:
    """What a model's outputs mean and how a model of this task is trained, judged and drawn.

    Instances are static (hashable) values that compiled functions close over.
    """

    kind: ClassVar[str]  # the recipe's name for the task
    supervised: ClassVar[bool] = True  # learns targets y from inputs x; False: the inputs are the targets
    classifies: ClassVar[bool] = False  # targets are class labels
    targets_are_inputs: ClassVar[bool] = False  # outputs have the input's shape and are compared with it
    metric_names: ClassVar[tuple[str, ...]] = ()  # what ``evaluate.metrics`` may ask for

    @classmethod
    def from_preprocessing(cls, pre: Preprocessing, loss: str | None) -> Task:
        """The task of data fitted by ``pre``, trained with ``loss`` (None: the default loss)."""
        return cls()

    @property
    def binary(self) -> bool:
        """Whether the model emits one logit per example, read as a probability."""
        return False

    @property
    def output_dim(self) -> int:
        """The width of the model's output layer (autoencoders take their output shape from the input)."""
        return 1

    @property
    def default_loss(self) -> str:
        return "mse"

    @property
    def default_metrics(self) -> list[str]:
        return list(self.metric_names)

    def link(self, logits: jax.Array) -> jax.Array:
        """Raw outputs -> what a user reads: probabilities, values or reconstructions."""
        return logits

    def targets_like(self, predictions: jax.Array, targets: jax.Array) -> jax.Array:
        """Targets in the shape and type of ``predictions``, for losses that compare the two."""
        return targets.astype(predictions.dtype).reshape(predictions.shape)

    def step_sums(self, logits: jax.Array, targets: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
        """Sums a train step collects beyond ``loss`` and ``count`` (``correct`` for classification)."""
        return {}

    def make_step(self, graphdef: nnx.GraphDef, loss_fn: Callable, optimizer: optax.GradientTransformation,
                  l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
        """``step(state, x, y, w) -> (state, sums)``: one optimizer step of this task (see dlcli.train.step)."""
        from dlcli.train.step import make_train_step

        return make_train_step(graphdef, loss_fn, optimizer, self, l1, l2, augment)

    def report(self, predictions: np.ndarray, targets: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
        """Every metric of the task for finite ``predictions`` (the link of the outputs) on ``targets``."""
        raise NotImplementedError

    @classmethod
    def targets_from_inputs(cls, x: np.ndarray) -> np.ndarray:
        """The targets of an unsupervised task, made from its inputs."""
        raise NotImplementedError(f"a {cls.kind} task learns targets given with the data")

    def draws_every_epoch(self, input_shape: tuple[int, ...]) -> bool:
        """Whether :meth:`write_epoch_figures` draws anything: then the host needs every epoch's state."""
        return False

    def write_epoch_figures(self, run_dir: Path, setup: Any, state: Any, epoch: int) -> None:
        """Pictures drawn after each epoch (none by default)."""

    def write_figures(self, folder: Path, setup: Any, last: Any, best: Any) -> dict[str, str]:
        """The final pictures of what the model learned, beyond the curves; name -> file."""
        return {}
