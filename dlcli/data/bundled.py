"""Bundled data sets: generated, or shipped inside scikit-learn (:mod:`dlcli.data.shipped`). Nothing downloads.

Each entry is registered under the name a recipe uses as ``data.source``;
its keyword-only arguments are the recipe's ``[data.options]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dlcli.registry import Registry

# Data sets with a module of their own; the rest register below.
DATASETS = Registry("data set", {
    "mnist": "dlcli.data.images:mnist",
    "gaussian_mixture": "dlcli.data.mixtures:gaussian_mixture",
    "sine": "dlcli.data.sequences:sine",
    "long_memory": "dlcli.data.sequences:long_memory",
    "gunpoint": "dlcli.data.sequences:gunpoint",
    "iris": "dlcli.data.shipped:iris",
    "wine": "dlcli.data.shipped:wine",
    "breast_cancer": "dlcli.data.shipped:breast_cancer",
    "diabetes": "dlcli.data.shipped:diabetes",
    "digits": "dlcli.data.shipped:digits",
})


@dataclass(frozen=True)
class Raw:
    """A data set before splitting: a table with named columns, or arrays."""

    table: pa.Table | None = None
    x: np.ndarray | None = None  # (N, ...) for image or sequence data
    y: np.ndarray | None = None
    target: str | None = None  # the default target column of a table
    classes: list[str] | None = None  # names of integer labels 0..K-1


def _points(x: np.ndarray, y: np.ndarray) -> Raw:
    return Raw(table=pa.table({"x1": x[:, 0], "x2": x[:, 1], "label": y.astype(np.int64)}), target="label")


@DATASETS.register("xor")
def xor(seed: int, *, repeat: int = 1, noise: float = 0.0) -> Raw:
    """The four XOR points (label = x1 xor x2), optionally repeated with jitter."""
    x = np.tile(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32), (repeat, 1))
    y = (x[:, 0] != x[:, 1]).astype(np.int64)
    x = x + noise * np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    return _points(x, y)


@DATASETS.register("gender")
def gender(seed: int) -> Raw:
    """The lecture's four people: predict gender from weight (lb) and height (in)."""
    table = pa.table({
        "name": ["Alice", "Bob", "Charlie", "Diana"],
        "weight": [133.0, 160.0, 152.0, 120.0],
        "height": [65.0, 72.0, 70.0, 60.0],
        "gender": ["F", "M", "M", "F"],
    })
    return Raw(table=table, target="gender")


@DATASETS.register("moons")
def moons(seed: int, *, samples: int = 1000, noise: float = 0.2) -> Raw:
    """Two interleaving half circles.

    ``sklearn.datasets.make_moons(samples, noise=noise, random_state=seed)``, draw for draw.
    """
    outer, inner = samples // 2, samples - samples // 2
    x = np.vstack([np.append(np.cos(np.linspace(0, np.pi, outer)), 1 - np.cos(np.linspace(0, np.pi, inner))),
                   np.append(np.sin(np.linspace(0, np.pi, outer)), 1 - np.sin(np.linspace(0, np.pi, inner)) - 0.5)]).T
    return _shuffled_with_noise(x, outer, inner, noise, seed)


@DATASETS.register("circles")
def circles(seed: int, *, samples: int = 1000, noise: float = 0.1, factor: float = 0.5) -> Raw:
    """A circle inside another.

    ``sklearn.datasets.make_circles(samples, noise=noise, factor=factor, random_state=seed)``, draw for draw.
    """
    outer, inner = samples // 2, samples - samples // 2
    angle_out = np.linspace(0, 2 * np.pi, outer, endpoint=False)
    angle_in = np.linspace(0, 2 * np.pi, inner, endpoint=False)
    x = np.vstack([np.append(np.cos(angle_out), np.cos(angle_in) * factor),
                   np.append(np.sin(angle_out), np.sin(angle_in) * factor)]).T
    return _shuffled_with_noise(x, outer, inner, noise, seed)


def _shuffled_with_noise(x: np.ndarray, outer: int, inner: int, noise: float, seed: int) -> Raw:
    """scikit-learn's ending of make_moons and make_circles, draw for draw: shuffle, then add noise."""
    y = np.hstack([np.zeros(outer, dtype=np.intp), np.ones(inner, dtype=np.intp)])
    generator = np.random.RandomState(seed)
    order = np.arange(len(x))
    generator.shuffle(order)
    x, y = x[order], y[order]
    x += generator.normal(scale=noise, size=x.shape)
    return _points(x.astype(np.float32), y)


@DATASETS.register("spirals")
def spirals(seed: int, *, samples: int = 1000, arms: int = 2, turns: float = 1.5, noise: float = 0.05) -> Raw:
    """Interleaved spiral arms, one class per arm: hard for shallow or saturating nets."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, arms, samples)
    radius = rng.uniform(0.05, 1.0, samples)
    angle = 2 * np.pi * (turns * radius + label / arms)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x = x + noise * rng.standard_normal(x.shape)
    return _points(x.astype(np.float32), label)
