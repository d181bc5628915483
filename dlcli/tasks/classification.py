"""Classification: class labels from inputs; one logit for two classes, K logits for more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dlcli.tasks.base import Task

if TYPE_CHECKING:
    import jax

    from dlcli.data.preprocess import Preprocessing


@dataclass(frozen=True)
class Classification(Task):
    kind: ClassVar[str] = "classification"
    classifies: ClassVar[bool] = True
    metric_names: ClassVar[tuple[str, ...]] = ("accuracy", "auc")
    num_classes: int = 2

    @classmethod
    def from_preprocessing(cls, pre: Preprocessing, loss: str | None) -> Task:
        return cls(num_classes=len(pre.classes))

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    @property
    def output_dim(self) -> int:
        return 1 if self.binary else self.num_classes

    @property
    def default_loss(self) -> str:
        return "binary_crossentropy" if self.binary else "categorical_crossentropy"

    @property
    def default_metrics(self) -> list[str]:
        return ["accuracy", "auc"] if self.binary else ["accuracy"]

    def link(self, logits: jax.Array) -> jax.Array:
        """Probabilities: (B,) of the positive class for two classes, (B, K) otherwise."""
        import jax

        return jax.nn.sigmoid(logits[:, 0]) if self.binary else jax.nn.softmax(logits, axis=-1)

    def targets_like(self, predictions: jax.Array, targets: jax.Array) -> jax.Array:
        import jax

        if not self.binary:
            return jax.nn.one_hot(targets, self.num_classes)  # (B, K)
        return super().targets_like(predictions, targets)

    def correct(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
        """1.0 where the predicted class is right (B,); the rule Keras uses (p > 0.5)."""
        import jax.numpy as jnp

        predicted = (logits[:, 0] > 0).astype(jnp.int32) if self.binary else jnp.argmax(logits, axis=-1)
        return (predicted == labels).astype(jnp.float32)

    def step_sums(self, logits: jax.Array, targets: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
        return {"correct": (self.correct(logits, targets) * weights).sum()}

    def report(self, predictions: np.ndarray, targets: np.ndarray, classes: list[str] | None) -> dict[str, Any]:
        from dlcli import metrics

        return metrics.classification_report(targets, predictions, classes)
