"""Which columns of a table are a recipe's inputs, and their names once encoded."""

from __future__ import annotations

from dlcli.data.preprocess import Preprocessing
from dlcli.data.tables import require_columns
from dlcli.errors import DlcliError, choices_text
from dlcli.recipe import DataConfig


def feature_columns(config: DataConfig, columns: list[str], target: str) -> list[str]:
    """The input columns: data.features, or every column but the target (and a ``name`` column)."""
    features = config.features or [c for c in columns if c != target and c != "name"]
    if not features:
        raise DlcliError(f"data.path '{config.path}': the file has no column to learn from, only the target "
                         f"'{target}'. Add the input columns to the file. If it does have more columns, their "
                         "separator was not recognised: set data.delimiter to it (e.g. delimiter = \";\").")
    require_columns("data", columns, features)
    if target in features:
        raise DlcliError(f"data.features includes the target column '{target}': the model would be given the answer. "
                         "Remove it from data.features.")
    for key in ("one_hot", "offsets", "scales"):
        unknown = [c for c in getattr(config, key) if c not in features]
        if unknown:
            raise DlcliError(f"data.{key} names column(s) {', '.join(map(repr, unknown))} that are not features. "
                             f"Features: {choices_text(features)}.")
    return features


def feature_names(pre: Preprocessing) -> list[str]:
    names = []
    for name in pre.input_columns:
        names += [f"{name}={c}" for c in pre.one_hot[name]] if name in pre.one_hot else [name]
    return names
