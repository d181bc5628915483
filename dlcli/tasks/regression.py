"""Regression: one value, or a vector of ``target_dim`` values, per example."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dlcli.tasks.base import Task

if TYPE_CHECKING:
    import jax

    from dlcli.data.preprocess import Preprocessing


@dataclass(frozen=True)
class Regression(Task):
    kind: ClassVar[str] = "regression"
    metric_names: ClassVar[tuple[str, ...]] = ("mse", "mae", "r2")
    target_dim: int = 1

    @classmethod
    def from_preprocessing(cls, pre: Preprocessing, loss: str | None) -> Task:
        return cls(target_dim=int(np.prod(pre.target_shape)))

    @property
    def output_dim(self) -> int:
        return self.target_dim

    @property
    def default_metrics(self) -> list[str]:
        return ["mae", "r2"]

    def link(self, logits: jax.Array) -> jax.Array:
        """Values: (B,) for one target, (B, D) for several."""
        return logits[:, 0] if self.target_dim == 1 else logits

    def report(self, predictions: np.ndarray, targets: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
        from dlcli import metrics

        return metrics.regression_report(targets, predictions)
