"""Bundled data sets: generated, or shipped inside scikit-learn. Nothing downloads.

Each entry is registered under the name a recipe uses as ``data.source``;
its keyword-only arguments are the recipe's ``[data.options]``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

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
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=samples, noise=noise, random_state=seed)
    return _points(x.astype(np.float32), y)


@DATASETS.register("circles")
def circles(seed: int, *, samples: int = 1000, noise: float = 0.1, factor: float = 0.5) -> Raw:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=samples, noise=noise, factor=factor, random_state=seed)
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


def _sklearn_table(bunch, classes: bool) -> Raw:
    columns = {name.replace(" ", "_"): bunch.data[:, i].astype(np.float32) for i, name in enumerate(bunch.feature_names)}
    columns["target"] = bunch.target.astype(np.int64 if classes else np.float32)
    names = [str(n) for n in bunch.target_names] if classes else None
    return Raw(table=pa.table(columns), target="target", classes=names)


@DATASETS.register("iris")
def iris(seed: int) -> Raw:
    from sklearn.datasets import load_iris

    return _sklearn_table(load_iris(), classes=True)


@DATASETS.register("wine")
def wine(seed: int) -> Raw:
    from sklearn.datasets import load_wine

    return _sklearn_table(load_wine(), classes=True)


@DATASETS.register("breast_cancer")
def breast_cancer(seed: int) -> Raw:
    from sklearn.datasets import load_breast_cancer

    return _sklearn_table(load_breast_cancer(), classes=True)


@DATASETS.register("diabetes")
def diabetes(seed: int) -> Raw:
    """Disease progression after one year (regression, 10 features)."""
    from sklearn.datasets import load_diabetes

    return _sklearn_table(load_diabetes(), classes=False)


def shipped_file(name: str) -> Path | None:
    """A data file scikit-learn ships in ``sklearn/datasets/data``, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    return path if path.is_file() else None


@DATASETS.register("digits")
def digits(seed: int) -> Raw:
    """1,797 handwritten digits as 8x8 grey images (N, 8, 8, 1) scaled to [0, 1].

    Read straight from the file scikit-learn ships (what ``load_digits`` reads): importing
    ``sklearn.datasets`` costs a second, more than the rest of a digits run's start-up.
    """
    path = shipped_file("digits.csv.gz")
    if path is None:  # a scikit-learn that keeps its data elsewhere: its own loader
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, target = bunch.images, bunch.target
    else:
        table = np.loadtxt(path, delimiter=",")  # 64 pixels (0-16) then the digit, per row
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    x = (images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1)
    return Raw(x=x, y=target.astype(np.int64), classes=[str(d) for d in range(10)])
