"""Adversarial: a GAN's generator against its discriminator."""

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


@dataclass(frozen=True)
class Adversarial(Task):
    """The model's outputs are the discriminator's logits that an input is real."""

    kind: ClassVar[str] = "adversarial"
    supervised: ClassVar[bool] = False
    metric_names: ClassVar[tuple[str, ...]] = ("real_score",)

    @property
    def binary(self) -> bool:
        return True  # the discriminator's one logit: real or fake

    @property
    def default_loss(self) -> str:
        return "binary_crossentropy"

    def link(self, logits: jax.Array) -> jax.Array:
        """The discriminator's probability that x is real (B,)."""
        import jax

        return jax.nn.sigmoid(logits[:, 0])

    def make_step(self, graphdef: nnx.GraphDef, loss_fn: Callable, optimizer: optax.GradientTransformation,
                  l1: float = 0.0, l2: float = 0.0, augment: Callable | None = None) -> Callable:
        from dlcli.train.adversarial import make_adversarial_step

        return make_adversarial_step(graphdef, loss_fn, optimizer, self, l1, l2, augment)

    def report(self, predictions: np.ndarray, targets: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
        return {"real_score": float(predictions.mean())}  # D(x) on real data: 0.5 = cannot tell real from fake

    @classmethod
    def targets_from_inputs(cls, x: np.ndarray) -> np.ndarray:
        return np.ones(len(x), np.float32)  # every training example is real

    def draws_every_epoch(self, input_shape: tuple[int, ...]) -> bool:
        from dlcli.report.generative import is_image

        return is_image(tuple(input_shape))  # a grid of samples per epoch, to watch the generator learn

    def write_epoch_figures(self, run_dir: Path, setup: Any, state: Any, epoch: int) -> None:
        from dlcli.report.generative import write_sample_grid

        write_sample_grid(run_dir, setup, state, epoch)

    def write_figures(self, folder: Path, setup: Any, last: Any, best: Any) -> dict[str, str]:
        from dlcli.report.generative import adversarial_figures, eval_model

        # A GAN's 'best' loss means little: its last weights are the result.
        return adversarial_figures(folder, setup, eval_model(setup, last))
