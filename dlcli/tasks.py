"""Tasks: what the model's outputs mean, and which loss and metrics fit.

Models emit raw outputs ("logits"); the task turns them into what a user
reads (probabilities, class labels or values) and decides the output width.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class Task:
    kind: str  # "classification" | "regression"
    num_classes: int | None = None  # classification only
    target_dim: int = 1  # regression only

    @property
    def binary(self) -> bool:
        return self.kind == "classification" and self.num_classes == 2

    @property
    def output_dim(self) -> int:
        if self.kind == "classification":
            return 1 if self.binary else self.num_classes
        return self.target_dim

    @property
    def default_loss(self) -> str:
        if self.kind == "regression":
            return "mse"
        return "binary_crossentropy" if self.binary else "categorical_crossentropy"

    @property
    def default_metrics(self) -> list[str]:
        if self.kind == "regression":
            return ["mae", "r2"]
        return ["accuracy", "auc"] if self.binary else ["accuracy"]

    def link(self, logits: jax.Array) -> jax.Array:
        """Outputs -> probabilities (B,) or (B, K), or values (B,) / (B, D)."""
        if self.binary:
            return jax.nn.sigmoid(logits[:, 0])
        if self.kind == "classification":
            return jax.nn.softmax(logits, axis=-1)
        return logits[:, 0] if self.target_dim == 1 else logits

    def correct(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
        """1.0 where the predicted class is right (B,); the rule Keras uses (p > 0.5)."""
        if self.binary:
            predicted = (logits[:, 0] > 0).astype(jnp.int32)
        else:
            predicted = jnp.argmax(logits, axis=-1)
        return (predicted == labels).astype(jnp.float32)


def task_for(kind: str, num_classes: int | None, target_dim: int = 1) -> Task:
    return Task(kind=kind, num_classes=num_classes, target_dim=target_dim)
