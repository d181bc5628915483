"""The data sets scikit-learn ships, read straight from its files.

What ``sklearn.datasets.load_*`` return, array for array, without importing
``sklearn.datasets`` (and SciPy), which costs a second: more than the rest of
a small run's start-up. A scikit-learn that keeps its files elsewhere falls
back to its own loaders.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa

from dlcli.data.bundled import Raw

IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
WINE_FEATURES = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
                 "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280/od315_of_diluted_wines",
                 "proline"]
CANCER_MEASURES = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                   "concave points", "symmetry", "fractal dimension"]
CANCER_FEATURES = ([f"mean {m}" for m in CANCER_MEASURES] + [f"{m} error" for m in CANCER_MEASURES]
                   + [f"worst {m}" for m in CANCER_MEASURES])
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def shipped_file(name: str) -> Path | None:
    """A data file scikit-learn ships in ``sklearn/datasets/data``, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    return path if path.is_file() else None


def labelled_csv(name: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """(data (N, F) float64, target (N,) int, class names) of a file in ``load_csv_data``'s layout.

    Its first line is ``N,F,class names...``; every other line holds F numbers and the class index.
    """
    path = shipped_file(name)
    if path is None:
        return None
    with path.open(encoding="utf-8") as file:
        header = file.readline().rstrip("\r\n").split(",")
        table = np.loadtxt(file, delimiter=",", ndmin=2)
    samples, features = int(header[0]), int(header[1])
    if table.shape != (samples, features + 1):
        return None
    return table[:, :-1], table[:, -1].astype(int), header[2:]


def table_of(data: np.ndarray, target: np.ndarray, features: list[str], classes: list[str] | None) -> Raw:
    """One float32 column per feature (spaces become underscores) and a ``target`` column."""
    columns = {name.replace(" ", "_"): data[:, i].astype(np.float32) for i, name in enumerate(features)}
    columns["target"] = target.astype(np.int64 if classes is not None else np.float32)
    return Raw(table=pa.table(columns), target="target", classes=classes)


def classification(file_name: str, features: list[str], loader: str) -> Raw:
    shipped = labelled_csv(file_name)
    if shipped is None:  # a scikit-learn that keeps its data elsewhere: its own loader
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)()
        shipped = bunch.data, bunch.target, [str(name) for name in bunch.target_names]
    data, target, classes = shipped
    return table_of(data, target, features, classes)


def iris(seed: int) -> Raw:
    """Fisher's 150 irises: 4 measurements, 3 species."""
    return classification("iris.csv", IRIS_FEATURES, "load_iris")


def wine(seed: int) -> Raw:
    """178 wines: 13 chemical measurements, 3 cultivars."""
    return classification("wine_data.csv", WINE_FEATURES, "load_wine")


def breast_cancer(seed: int) -> Raw:
    """569 breast masses: 30 features of their cell nuclei, malignant or benign."""
    return classification("breast_cancer.csv", CANCER_FEATURES, "load_breast_cancer")


def diabetes(seed: int) -> Raw:
    """Disease progression after one year (regression, 10 features)."""
    data_file, target_file = shipped_file("diabetes_data_raw.csv.gz"), shipped_file("diabetes_target.csv.gz")
    if data_file is None or target_file is None:
        from sklearn.datasets import load_diabetes

        bunch = load_diabetes()
        return table_of(bunch.data, bunch.target, DIABETES_FEATURES, None)
    with gzip.open(data_file, "rt", encoding="utf-8") as file:
        data = np.loadtxt(file)
    with gzip.open(target_file, "rt", encoding="utf-8") as file:
        target = np.loadtxt(file)
    return table_of(scaled_like_sklearn(data), target, DIABETES_FEATURES, None)


def scaled_like_sklearn(data: np.ndarray) -> np.ndarray:
    """``load_diabetes(scaled=True)``'s features: ``sklearn.preprocessing.scale``, then divided by sqrt(N).

    The same operations in the same order, the corrections for imprecise means included, so the bits agree.
    """
    mean, scale = np.nanmean(data, axis=0), np.nanstd(data, axis=0)
    data -= mean
    residual = np.nanmean(data, axis=0)
    if not np.allclose(residual, 0):
        data -= residual
    scale[scale < 10 * np.finfo(scale.dtype).eps] = 1.0  # a constant column is left unscaled
    data /= scale
    residual = np.nanmean(data, axis=0)
    if not np.allclose(residual, 0):
        data -= residual
    data /= data.shape[0] ** 0.5
    return data


def digits(seed: int) -> Raw:
    """1,797 handwritten digits as 8x8 grey images (N, 8, 8, 1) scaled to [0, 1]."""
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
