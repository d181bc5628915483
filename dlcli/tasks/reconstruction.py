"""Reconstruction: an autoencoder learns to give back its input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dlcli.tasks.base import Task

if TYPE_CHECKING:
    import jax
    import optax
    from flax import nnx

    from dlcli.data.preprocess import Preprocessing


@dataclass(frozen=True)
class Reconstruction(Task):
    """Outputs are reconstructions, squashed by a sigmoid when the loss is binary cross-entropy."""

    kind: ClassVar[str] = "reconstruction"
    supervised: ClassVar[bool] = False
    targets_are_inputs: ClassVar[bool] = True
    metric_names: ClassVar[tuple[str, ...]] = ("mse", "mae")
    sigmoid_outputs: bool = False

    @classmethod
    def from_preprocessing(cls, pre: Preprocessing, loss: str | None) -> Task:
        # Reconstructions trained with cross-entropy are logits of values in [0, 1].
        return cls(sigmoid_outputs=loss == "binary_crossentropy")

    def link(self, logits: jax.Array) -> jax.Array:
        import jax

        return jax.nn.sigmoid(logits) if self.sigmoid_outputs else logits

    def make_step(self, graphdef: nnx.GraphDef, loss_fn: Callable, optimizer: optax.GradientTransformation,
                  l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
        from dlcli.train.reconstruction import make_reconstruction_step

        return make_reconstruction_step(graphdef, loss_fn, optimizer, self, l1, l2, augment)

    def report(self, predictions: np.ndarray, targets: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
        error = predictions.reshape(len(targets), -1) - np.asarray(targets).reshape(len(targets), -1)
        return {"mse": float(np.mean(error ** 2)), "mae": float(np.mean(np.abs(error)))}  # per input value

    @classmethod
    def targets_from_inputs(cls, x: np.ndarray) -> np.ndarray:
        return x

    def write_figures(self, folder: Path, setup: Any, last: Any, best: Any) -> dict[str, str]:
        from dlcli.report.generative import eval_model, reconstruction_figures

        return reconstruction_figures(folder, setup, eval_model(setup, best))
