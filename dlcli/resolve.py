"""Registry-backed recipe sections, checked when the recipe is loaded.

``[model]``, ``[loss]`` and ``[optimizer]`` hold keys that belong to the
registry entry their ``kind`` names, so the pydantic schema in
:mod:`dlcli.recipe` cannot check them alone. Checking them here, right after
the TOML is read, means a typo fails in a second with the recipe file named,
instead of after a large data file has been read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlcli.errors import DlcliError

if TYPE_CHECKING:
    from dlcli.recipe import Recipe  # the recipe calls this module: a type only


def check_components(recipe: Recipe, label: str) -> None:
    """Raise :class:`DlcliError` naming ``label`` for an unknown name, key or bad value in a component."""
    from dlcli.activations import check_activation
    from dlcli.losses import LOSSES
    from dlcli.models import MODELS
    from dlcli.optim import check_optimizer

    try:
        MODELS.check_name(recipe.model.kind, where="model.kind")
        MODELS.validate(recipe.model.kind, recipe.model.settings(), where="[model]")
        activation = recipe.model.settings().get("activation")
        if isinstance(activation, (str, dict)):
            check_activation(activation)
        if recipe.loss is not None:
            LOSSES.check_name(recipe.loss.kind, where="loss.kind")
            LOSSES.validate(recipe.loss.kind, recipe.loss.settings(), where="[loss]")
        check_optimizer(recipe.optimizer)  # optimizer, schedule, clipping, decay: all checked, optax not imported
    except DlcliError as error:
        raise DlcliError(f"{label} {error}") from None
