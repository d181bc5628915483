"""What a member's state carries as data, so that variants differing only in it share one compiled program.

A stack's members may differ in the optimizer's learning rate, momentum,
betas, epsilon, clipping norm and weight decay (injected hyperparameters in
the optimizer state), single-number L1/L2 strengths (``TrainState.penalty``),
a dropout rate above 0 (``TrainState.dropout``) and an element-wise hidden
activation (an index in the model state that picks the function with
``lax.switch``, see :mod:`dlcli.compare.choice`). :func:`program_key` blanks
exactly those: recipes with equal keys train as one vmapped program.
Maxout changes the layer widths and stays its own program.
"""

from __future__ import annotations

from typing import Any

from dlcli.recipe import Recipe, to_toml, toml_value

CARRIED = "(carried as data)"  # what program_key writes in place of a carried value


def program_key(recipe: Recipe) -> str:
    """The recipe with what the state can carry blanked out: equal keys share a program."""
    from dlcli.optim import OPTIMIZERS, injectable

    train = recipe.train
    if carried_strengths(recipe) is not None:  # carried in the state (TrainState.penalty)
        train = train.model_copy(update={"l1": 0.0, "l2": 0.0})
    recipe = recipe.model_copy(update={"seed": 0, "train": train})
    model = {}
    if carried_keep(recipe) is not None:  # a rate above 0 is carried in the state (TrainState.dropout)
        model["dropout"] = 0.5
    if carried_activation(recipe) is not None:  # an index in the model state (ChoiceActivation)
        model["activation"] = CARRIED
    if model:
        recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update=model)})
    if not injectable(recipe.optimizer):
        return to_toml(recipe)
    own, settings = set(OPTIMIZERS.options(recipe.optimizer.kind)), recipe.optimizer.settings()
    numbers = {k: 0.0 for k, v in settings.items() if k in own and is_number(v)}
    shared = {k: 1.0 for k in ("clip_global_norm", "weight_decay")  # carried too when on (off: no such step)
              if is_number(settings.get(k)) and settings[k] > 0}
    optimizer = recipe.optimizer.model_copy(update={"learning_rate": 1.0, **numbers, **shared})
    return to_toml(recipe.model_copy(update={"optimizer": optimizer}))


def is_number(value: Any) -> bool:
    """A plain number setting (not a boolean, a table or a name)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def carried_strengths(recipe: Recipe) -> dict[str, Any] | None:
    """A variant's L1/L2 strengths as data in its state, when they are single numbers (see :func:`program_key`)."""
    import numpy as np

    l1, l2 = recipe.train.l1, recipe.train.l2
    if not all(isinstance(strength, (int, float)) for strength in (l1, l2)):
        return None
    return {"l1": np.float32(l1), "l2": np.float32(l2)}


def carried_keep(recipe: Recipe) -> Any:
    """A variant's dropout keep probability as data in its state, when its model drops units at all (a model
    without dropout has no Dropout layers: another program)."""
    import numpy as np

    rate = recipe.model.settings().get("dropout")
    if not is_number(rate) or not 0 < rate < 1:
        return None
    return np.float32(1.0 - rate)


def carried_activation(recipe: Recipe) -> Any:
    """A variant's hidden activation spec, when it can be carried as an index: element-wise, in a model kind
    with an ``activation`` setting (mlp, cnn, lenet: Sequentials whose Activation layers can be swapped).

    The model's own default counts: an mlp without the key computes relu, and shares a program with tanh.
    """
    from dlcli.activations import pieces_per_unit
    from dlcli.models import MODELS

    options = MODELS.options(recipe.model.kind)
    if "activation" not in options:
        return None
    spec = recipe.model.settings().get("activation", options["activation"])
    return spec if pieces_per_unit(spec) == 1 else None


def activation_choice(recipes: list[Recipe]) -> tuple[list[Any], list[int]] | None:
    """(the distinct activation specs, each recipe's index into them) of a group's variants; None when they
    all use one activation (then the model keeps its plain Activation layers)."""
    specs = [carried_activation(recipe) for recipe in recipes]
    if None in specs:
        return None
    distinct: dict[str, Any] = {}
    for spec in specs:
        distinct.setdefault(toml_value(spec), spec)
    if len(distinct) < 2:
        return None
    keys = list(distinct)
    return list(distinct.values()), [keys.index(toml_value(spec)) for spec in specs]
