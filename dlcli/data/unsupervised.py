"""Data for models that learn from the inputs alone: autoencoders and GANs.

A reconstruction's target is its input, so each split is ``(x, x)``; a GAN's
discriminator learns that every training example is real, so it is
``(x, ones)``. Labels the data set has (digit classes, mixture modes) are
kept aside in ``Prepared.labels``: they colour the latent-space plot and
judge mode coverage, but never reach the loss.
"""

from __future__ import annotations

import numpy as np

from dlcli.data.bundled import Raw
from dlcli.data.preprocess import Preprocessing, check_finite, feature_statistics
from dlcli.data.splits import Prepared, split_fractions, split_indices
from dlcli.errors import DlcliError
from dlcli.recipe import DataConfig
from dlcli.tasks import task_named


def prepare_unsupervised(config: DataConfig, seed: int, raw: Raw, extra: dict[str, Raw], task: str):
    """Split and (optionally) standardise ``raw.x``; targets are the inputs (or "real" for a GAN)."""
    if raw.table is not None or any(r.table is not None for r in extra.values()):
        raise DlcliError(f"data: a {task} task reads arrays (an NPZ file with x, or a bundled image or point set), "
                         f"not a table. Save the inputs with np.savez(path, x=...).")
    for key in ("target", "features", "one_hot", "label_map"):
        if getattr(config, key):
            raise DlcliError(f"data.{key} has no meaning for a {task} task (the inputs are the targets). "
                             f"Remove data.{key}.")
    indices = split_indices(len(raw.x), seed, split_fractions(config, extra))
    parts = {name: (raw.x[idx], None if raw.y is None else raw.y[idx]) for name, idx in indices.items()}
    parts.update({name: (r.x, r.y) for name, r in extra.items()})
    pre = Preprocessing(kind="array", task=task, input_shape=list(np.shape(raw.x)[1:]), classes=raw.classes)
    if config.standardize:
        pre.mean, pre.std = feature_statistics(np.asarray(parts["train"][0], np.float32))
    splits, labels = {}, {}
    for name, (x, y) in parts.items():
        if not len(x):
            continue
        x = pre.array_features(x, f"{name} split")
        check_finite(x, "x", f"{name} split")
        splits[name] = (x, task_named(task).targets_from_inputs(x))
        if y is not None:
            labels[name] = np.asarray(y)
    return Prepared(splits=splits, preprocessing=pre, labels=labels)
