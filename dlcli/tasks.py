"""Tasks: what the model's outputs mean, and which loss and metrics fit.

Models emit raw outputs ("logits"); the task turns them into what a user
reads (probabilities, class labels or values) and decides the output width.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp


UNSUPERVISED = ("reconstruction", "adversarial")  # the inputs are the targets; labels only colour plots

# Model kinds that fix the task (an autoencoder reconstructs whatever the data's labels are);
# model modules add themselves with ``MODEL_TASKS[kind] = ...``.
MODEL_TASKS: dict[str, str] = {}


def implied_task(model_kind: str, declared: str | None, where: str = "task") -> str | None:
    """The task a recipe trains: the one its model fixes, else the declared one (None: infer from the data)."""
    import dlcli.models  # noqa: F401  (registers MODEL_TASKS)
    from dlcli.errors import DlcliError

    fixed = MODEL_TASKS.get(model_kind)
    if fixed and declared and declared != fixed:
        raise DlcliError(f"{where} = '{declared}' but model.kind = '{model_kind}' trains a {fixed} task. Remove "
                         f"{where} or set it to '{fixed}'.")
    if declared in UNSUPERVISED and not fixed:
        raise DlcliError(f"{where} = '{declared}' needs a model built for it (autoencoder or vae for "
                         f"reconstruction, gan for adversarial); model.kind = '{model_kind}' is not.")
    return fixed or declared


@dataclass(frozen=True)
class Task:
    """What the outputs mean.

    ``classification`` and ``regression`` learn y from x. ``reconstruction``
    learns x from x (autoencoders): outputs are reconstructions, squashed by a
    sigmoid when the loss is binary cross-entropy (``sigmoid_outputs``).
    ``adversarial`` trains a generator against a discriminator (GAN); the
    model's outputs are the discriminator's logits that an input is real.
    """

    kind: str  # "classification" | "regression" | "reconstruction" | "adversarial"
    num_classes: int | None = None  # classification only
    target_dim: int = 1  # regression only
    sigmoid_outputs: bool = False  # reconstruction only

    @property
    def binary(self) -> bool:
        return self.kind == "classification" and self.num_classes == 2

    @property
    def output_dim(self) -> int:
        if self.kind in UNSUPERVISED:
            return 1  # the discriminator's logit; autoencoders take their output shape from the input
        if self.kind == "classification":
            return 1 if self.binary else self.num_classes
        return self.target_dim

    @property
    def default_loss(self) -> str:
        if self.kind == "adversarial":
            return "binary_crossentropy"
        if self.kind in ("regression", "reconstruction"):
            return "mse"
        return "binary_crossentropy" if self.binary else "categorical_crossentropy"

    @property
    def default_metrics(self) -> list[str]:
        if self.kind == "reconstruction":
            return ["mse", "mae"]
        if self.kind == "adversarial":
            return ["real_score"]
        if self.kind == "regression":
            return ["mae", "r2"]
        return ["accuracy", "auc"] if self.binary else ["accuracy"]

    def link(self, logits: jax.Array) -> jax.Array:
        """Outputs -> probabilities (B,) or (B, K), values (B,) / (B, D), or reconstructions (B, ...)."""
        if self.kind == "reconstruction":
            return jax.nn.sigmoid(logits) if self.sigmoid_outputs else logits
        if self.kind == "adversarial":
            return jax.nn.sigmoid(logits[:, 0])  # the discriminator's probability that x is real
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


def task_for(kind: str, num_classes: int | None, target_dim: int = 1, sigmoid_outputs: bool = False) -> Task:
    return Task(kind=kind, num_classes=num_classes, target_dim=target_dim, sigmoid_outputs=sigmoid_outputs)
