"""Every registry entry trains: one parametrized test per registry, its rows taken from the registry.

A new loss, optimizer, schedule, activation, model, task or data set gets a
row here by being registered; one that cannot train (or a model without a
row in ``MODEL_RECIPES``) fails. Each case is a few full-batch steps on a
few hundred examples: the loss must stay finite and go down.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from dlcli.activations import ACTIVATIONS
from dlcli.data.bundled import DATASETS
from dlcli.losses import LOSSES
from dlcli.models import MODELS
from dlcli.optim import OPTIMIZERS, SCHEDULES
from dlcli.recipe import load_recipe
from dlcli.tasks import TASKS
from dlcli.train.setup import prepare
from dlcli.train.task_steps import make_task_step

STEPS = 25
EXAMPLES = 256

BASE = """
name = "registry-case"
seed = 0

[data]
source = "moons"
options = {{ samples = 400 }}
validation_split = 0.0
standardize = true

[model]
kind = "mlp"

[optimizer]
kind = "adam"
learning_rate = 0.02

[train]
epochs = 1
batch_size = "full"
{extra}
"""

# The data each model kind learns from, as ``--set`` overrides of BASE; a model kind without a row fails.
MODEL_RECIPES: dict[str, list[str]] = {
    "perceptron": [],
    "mlp": [],
    "cnn": ["data.source='digits'", "data.options={}", "data.standardize=false", "model.filters=[4]",
            "model.dense=[]"],
    "lenet": ["data.source='mnist'", "data.options={}", "data.standardize=false"],
    "rnn": ["data.source='sine'", "data.options={samples=300, steps=10}", "model.hidden=8"],
    "lstm": ["data.source='sine'", "data.options={samples=300, steps=10}", "model.hidden=8"],
    "gru": ["data.source='sine'", "data.options={samples=300, steps=10}", "model.hidden=8"],
    "autoencoder": ["data.source='digits'", "data.options={}", "data.standardize=false", "model.latent=4"],
    "vae": ["data.source='digits'", "data.options={}", "data.standardize=false"],
    "gan": ["data.source='gaussian_mixture'", "data.options={samples=400}", "model.generator=[16]",
            "model.discriminator=[16]", "optimizer.learning_rate=0.002"],
}

# Settings an entry needs to show progress within STEPS (the defaults suit whole runs).
SCHEDULE_SETTINGS = {"warmup_cosine": {"warmup_steps": 3}}


def train_briefly(tmp_path: Path, *overrides: str, extra: str = "", examples: int = EXAMPLES) -> dict[str, list[float]]:
    """Mean losses per step (every sum the task's step reports) of STEPS full-batch steps."""
    recipe = tmp_path / "case.toml"
    recipe.write_text(BASE.format(extra=extra))
    setup = prepare(load_recipe(str(recipe), list(overrides)))
    built = setup.built
    step = jax.jit(make_task_step(built.train_graph, built.loss_fn, setup.optimizer, built.task))
    x, y = (np.asarray(a)[:examples] for a in setup.data.splits["train"])
    weights = np.ones(len(x), np.float32)
    state, history = setup.initial_state(), {}
    for _ in range(STEPS):
        state, sums = step(state, x, y, weights)
        for key, value in sums.items():
            if key != "count" and np.ndim(value) == 0:
                history.setdefault(key, []).append(float(value / sums["count"]))
    return history


def assert_learns(history: dict[str, list[float]], key: str = "loss") -> None:
    losses = history[key]
    assert np.isfinite(losses).all(), losses
    assert losses[-1] < 0.95 * losses[0], f"{key} went {losses[0]:.4f} -> {losses[-1]:.4f}"


@pytest.mark.parametrize("loss", LOSSES.names())
def test_every_loss_trains(loss, tmp_path):
    assert_learns(train_briefly(tmp_path, f"loss.kind='{loss}'"))


@pytest.mark.parametrize("optimizer", OPTIMIZERS.names())
def test_every_optimizer_trains(optimizer, tmp_path):
    # Plain SGD and Adagrad need a larger step than Adam to show progress in a few steps.
    rate = {"sgd": 0.5, "adagrad": 0.2}.get(optimizer, 0.02)
    assert_learns(train_briefly(tmp_path, f"optimizer.kind='{optimizer}'", f"optimizer.learning_rate={rate}"))


@pytest.mark.parametrize("schedule", SCHEDULES.names())
def test_every_schedule_trains(schedule, tmp_path):
    settings = "".join(f"\n{key} = {value}" for key, value in SCHEDULE_SETTINGS.get(schedule, {}).items())
    assert_learns(train_briefly(tmp_path, extra=f'\n[optimizer.schedule]\nkind = "{schedule}"{settings}'))


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
def test_every_activation_trains(activation, tmp_path):
    assert_learns(train_briefly(tmp_path, f"model.activation='{activation}'", "model.hidden=[16, 16]"))


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_trains(model, tmp_path):
    assert model in MODEL_RECIPES, f"model '{model}' has no row in MODEL_RECIPES: add the data it learns from"
    examples = 32 if model == "lenet" else EXAMPLES  # 28x28 convolutions: a few images show learning
    history = train_briefly(tmp_path, f"model.kind='{model}'", *MODEL_RECIPES[model], examples=examples)
    # A GAN's summed loss is a game, not a descent; early on its generator learns to fool the discriminator.
    assert_learns(history, "generator_loss" if "generator_loss" in history else "loss")


@pytest.mark.parametrize("source", DATASETS.names())
def test_every_data_set_trains(source, tmp_path):
    history = train_briefly(tmp_path, f"data.source='{source}'", "data.options={}", "data.standardize=false")
    assert_learns(history)


def test_every_task_has_a_model_row():
    """Each task is trained above: some model row (or the default mlp) learns it."""
    from dlcli.tasks import MODELS_OF_TASK

    unsupervised = {task for task in TASKS.names() if not TASKS.get(task).supervised}
    assert unsupervised == set(MODELS_OF_TASK)
    assert all(model in MODEL_RECIPES for models in MODELS_OF_TASK.values() for model in models)
