"""``dlcli summary``: layers, output shapes and parameter counts, like Keras' model.summary()."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
from flax import nnx

from dlcli.assemble import assemble
from dlcli.data import load_data
from dlcli.models.stages import stages
from dlcli.recipe import LoadedRecipe

SUMMARY_ROWS = 20_000  # enough rows to see every class and the feature layout


@dataclass
class Row:
    name: str
    output_shape: str
    parameters: int


def parameter_count(module: nnx.Module) -> int:
    return int(sum(np.size(p) for p in jax.tree.leaves(nnx.state(module, nnx.Param))))


def summarize(loaded: LoadedRecipe) -> tuple[list[Row], int, list[int]]:
    """Rows per layer, the total parameter count and the input shape."""
    recipe = loaded.recipe
    data_config = recipe.data if recipe.data.limit else recipe.data.model_copy(update={"limit": SUMMARY_ROWS})
    data = load_data(data_config, recipe.seed, loaded.resolve_path, task=recipe.task)
    built = assemble(recipe, data.preprocessing)
    model = built.model
    model.eval()
    shape = (1, *data.preprocessing.input_shape)
    rows = []
    for stage in stages(model, shape[1:]):  # composite models (autoencoders, GANs, RNNs) are a few stages
        x = stage.input
        if stage.apply is not None:
            x = jax.eval_shape(stage.apply, x)
            rows.append(Row(stage.name, str(("B", *x.shape[1:])), parameter_count(stage.module)))
            continue
        for i, layer in enumerate(stage.module.layers):
            x = jax.eval_shape(layer, x)
            rows.append(Row(f"{stage.name}{i}: {type(layer).__name__}{_detail(layer)}", str(("B", *x.shape[1:])),
                            parameter_count(layer)))
    return rows, built.parameter_count, list(data.preprocessing.input_shape)


def _detail(layer: nnx.Module) -> str:
    name = getattr(layer, "name", None)
    return f"({name})" if isinstance(name, str) else ""
