"""Preprocessing fitted on the training split only, saved as JSON with the run.

The same :class:`Preprocessing` turns training data, a held-out split, and a
new file given to ``evaluate --data`` or ``predict`` into model inputs, so a
run directory needs nothing else to be used again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dlcli.data.tables import is_number, numeric_type, require_columns
from dlcli.errors import DlcliError, choices_text
from dlcli.files import write_text
from dlcli.tasks import task_named

MAX_CLASSES = 50
STATISTICS_COLUMNS = 4  # columns whose statistics one pass over the rows computes


@dataclasses.dataclass
class Preprocessing:
    kind: str  # "table" | "array"
    task: str  # the name of a task in dlcli.tasks.TASKS
    input_shape: list[int]  # one example, as the model sees it
    target_shape: list[int] = dataclasses.field(default_factory=list)  # one regression target; [] = scalar
    target: str | None = None
    input_columns: list[str] = dataclasses.field(default_factory=list)
    feature_names: list[str] = dataclasses.field(default_factory=list)
    classes: list[str] | None = None
    label_index: dict[str, int] | None = None
    one_hot: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    impute: dict[str, float] = dataclasses.field(default_factory=dict)
    offsets: dict[str, float] = dataclasses.field(default_factory=dict)
    scales: dict[str, float] = dataclasses.field(default_factory=dict)
    mean: list[float] | None = None
    std: list[float] | None = None

    def save(self, path: Path) -> None:
        write_text(path, json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Preprocessing":
        return cls(**json.loads(path.read_text()))

    # -- targets ---------------------------------------------------------
    def encode_target(self, values: np.ndarray, where: str) -> np.ndarray:
        if not task_named(self.task).classifies:
            y = np.asarray(values, np.float32)
            if not np.isfinite(y).all():
                raise DlcliError(f"{where}: target '{self.target or 'y'}' has {int((~np.isfinite(y)).sum())} "
                                 "NaN or infinite values. Clean them or set data.missing = \"drop\".")
            return y
        distinct, inverse = distinct_values(values)
        keys = [label_key(v) for v in distinct]
        unknown = sorted(set(keys) - set(self.label_index))
        if unknown:
            raise DlcliError(f"{where}: target '{self.target or 'y'}' has label(s) {', '.join(unknown[:5])} not seen in "
                             f"training (known: {choices_text(self.label_index)}). Add them to data.label_map or "
                             "remove those rows.")
        return np.array([self.label_index[k] for k in keys], np.int32)[inverse]

    # -- inputs ----------------------------------------------------------
    def table_features(self, table: pa.Table, where: str) -> np.ndarray:
        """(N, F) float32 model inputs from a table with the raw input columns."""
        require_columns(where, table.column_names, self.input_columns)
        width = sum(len(self.one_hot[name]) if name in self.one_hot else 1 for name in self.input_columns)
        x = np.empty((table.num_rows, width), np.float32)  # filled column by column: no intermediate copies
        at = 0
        for name in self.input_columns:
            column = table.column(name)
            if name in self.one_hot:
                values = np.array([str(v) for v in column.to_pylist()])
                for category in self.one_hot[name]:
                    x[:, at] = values == category
                    at += 1
                continue
            values = x[:, at]
            values[:] = numeric_column(column, name, where)
            if name in self.impute:
                np.copyto(values, np.float32(self.impute[name]), where=np.isnan(values))
            if name in self.offsets:
                values -= np.float32(self.offsets[name])
            if name in self.scales:
                values *= np.float32(self.scales[name])
            at += 1
        if not np.isfinite(x.sum(axis=0)).all():  # one pass; an infinite or NaN value makes its column's sum so
            for name, column in zip(self.feature_names or self.input_columns, x.T):
                check_finite(column, name.split("=")[0], where)
        return self.standardize(x, in_place=True)

    def array_features(self, x: np.ndarray, where: str) -> np.ndarray:
        if np.asarray(x).dtype.kind not in "biuf":
            raise DlcliError(f"{where}: inputs hold {np.asarray(x).dtype} values; they must be real numbers.")
        x = np.asarray(x, np.float32)
        if list(x.shape[1:]) != self.input_shape:
            raise DlcliError(f"{where}: inputs have shape {list(x.shape[1:])} per example; the model expects "
                             f"{self.input_shape}.")
        check_finite(x, "x", where)
        return self.standardize(x)

    def standardize(self, x: np.ndarray, in_place: bool = False) -> np.ndarray:
        """``x`` as float32, standardised with the training statistics (``in_place``: overwriting ``x``)."""
        x = np.asarray(x, np.float32) if in_place else np.array(x, np.float32)
        if self.mean is None:
            return x
        flat = x.reshape(len(x), -1)
        flat -= np.asarray(self.mean, np.float32)
        flat /= np.asarray(self.std, np.float32)
        return x


def distinct_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct labels and, per row, the index of its label among them.

    Labels are keyed once per distinct value, not once per row (a million
    HIGGS events took seconds through :func:`label_key` row by row).
    """
    values = np.asarray(values).reshape(-1)
    if values.dtype.kind in "biuf" and not (values.dtype.kind == "f" and np.isnan(values).any()):
        # Hashing rather than sorting: 8M float targets took a second per call through np.unique.
        array = pa.array(values + values.dtype.type(0) if values.dtype.kind == "f" else values)  # -0.0 is 0.0
        distinct = np.sort(pc.unique(array).to_numpy(zero_copy_only=False))
        return distinct, pc.index_in(array, value_set=pa.array(distinct)).to_numpy(zero_copy_only=False)
    if values.dtype.kind in "biufUS":
        return np.unique(values, return_inverse=True)
    return values, np.arange(len(values))  # objects may not sort: key every row


def label_key(value: Any) -> str:
    """A label's canonical text: 1, 1.0 and True all read as '1'."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def numeric_column(column: pa.ChunkedArray, name: str, where: str) -> np.ndarray:
    if pa.types.is_null(column.type):  # a CSV column with no values at all: missing, not text
        return np.full(len(column), np.nan, np.float32)
    if not numeric_type(column.type):
        if decimal_commas(column):
            raise DlcliError(f"{where}: column '{name}' holds numbers written with a decimal comma (like "
                             f"'{decimal_commas(column)}'), which are read as text. Save the file with decimal points "
                             "(1.5, not 1,5).")
        raise DlcliError(f"{where}: column '{name}' holds {column.type} values, not numbers. List it in "
                         f"data.one_hot to encode its categories, or leave it out of data.features.")
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float32)


def decimal_commas(column: pa.ChunkedArray) -> str | None:
    """A value of a text column if its first values all read as numbers with a decimal comma, else None."""
    sample = [str(v) for v in column.drop_null().slice(0, 20).to_pylist()]
    if sample and all(is_number(v.replace(",", ".", 1)) for v in sample) and any("," in v for v in sample):
        return next(v for v in sample if "," in v)
    return None


def check_finite(values: np.ndarray, name: str, where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
        raise DlcliError(f"{where}: column '{name}' has {len(rows)} row(s) with missing, NaN or infinite values "
                         f"(first at row {rows[0]}). Set data.missing = \"drop\", \"mean\" or \"median\", or clean the file.")


def has_missing(table: pa.Table, columns: list[str]) -> bool:
    """Whether any of ``columns`` holds a null or NaN: null counts are metadata, NaNs one pass per float column."""
    for name in columns:
        column = table.column(name)
        if column.null_count or (pa.types.is_floating(column.type) and pc.any(pc.is_nan(column)).as_py()):
            return True
    return False


def missing_rows(table: pa.Table, columns: list[str]) -> np.ndarray:
    """A boolean mask of rows with a null or NaN in any of ``columns``."""
    mask = np.zeros(table.num_rows, bool)
    for name in columns:
        column = table.column(name)
        mask |= column.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_floating(column.type):
            mask |= pc.fill_null(pc.is_nan(column), False).to_numpy(zero_copy_only=False)
    return mask


def fit_labels(values: np.ndarray, label_map: dict[str, int] | None, classes: list[str] | None,
               where: str) -> tuple[list[str], dict[str, int]]:
    """Class names by index and the raw-label -> index map, from the training targets."""
    check_two_classes(values, where)
    if label_map:
        indices = sorted(set(label_map.values()))
        if indices != list(range(len(indices))):
            raise DlcliError(f"{where}: data.label_map must number the classes 0, 1, ... without gaps; got "
                             f"{sorted(label_map.values())}.")
        names = [next(k for k, v in label_map.items() if v == i) for i in indices]
        return names, dict(label_map)
    keys = sorted({label_key(v) for v in distinct_values(values)[0]}, key=lambda k: (not is_number(k), _as_number(k), k))
    if classes is not None and all(k.isdigit() and int(k) < len(classes) for k in keys):
        return classes, {str(i): i for i in range(len(classes))}
    return keys, {k: i for i, k in enumerate(keys)}


def check_two_classes(values: np.ndarray, where: str) -> None:
    """A classifier learns nothing from training targets of one class: say so before training."""
    distinct = distinct_values(values)[0]
    if len(distinct) >= 2:
        return
    found = f"one class only ('{label_key(distinct[0])}')" if len(distinct) else "no labels"
    raise DlcliError(f"{where}: the training split holds {found}; a classifier needs examples of at least two "
                     "classes. Check that data.target names the column to predict and that data.limit, data.missing "
                     "or the splits did not leave rows of a single class; to predict the value itself, set "
                     "task = \"regression\".")


def _as_number(text: str) -> float:
    return float(text) if is_number(text) else 0.0


def feature_statistics(x: np.ndarray, skip: np.ndarray | None = None) -> tuple[list[float], list[float]]:
    """Per-feature mean and std of the training inputs; constant features keep scale 1."""
    flat = x.reshape(len(x), -1)
    mean, std = np.zeros(flat.shape[1]), np.zeros(flat.shape[1])
    # Each column in float64, exact, without a float64 copy of the whole matrix; a few columns per pass
    # over the rows, since the matrix is row-major and one column alone would read all of it anyway.
    # The buffers are reused: fresh pages for every column cost more than the arithmetic.
    columns = np.empty((min(STATISTICS_COLUMNS, flat.shape[1]), len(flat)), np.float64)  # (G, N)
    deviations = np.empty(len(flat), np.float64)  # (N,)
    for start in range(0, flat.shape[1], STATISTICS_COLUMNS):
        group = flat[:, start:start + STATISTICS_COLUMNS]
        for row in range(0, len(flat), 1 << 12):  # a block of rows at a time, transposed in cache
            columns[:group.shape[1], row:row + (1 << 12)] = group[row:row + (1 << 12)].T
        for j, column in enumerate(columns[:group.shape[1]], start):
            mean[j], std[j] = _mean_std(column, deviations)
    std[std < 1e-8] = 1.0
    if skip is not None:
        mean[skip], std[skip] = 0.0, 1.0
    return mean.tolist(), std.tolist()


def _mean_std(column: np.ndarray, deviations: np.ndarray) -> tuple[float, float]:
    """``column.mean(), column.std()`` as numpy computes them (pairwise sums, the same divisions), with the
    deviations written into ``deviations`` instead of a new array."""
    count = len(column)
    mean = np.add.reduce(column) / count
    np.subtract(column, mean, out=deviations)
    np.multiply(deviations, deviations, out=deviations)
    return float(mean), float(np.sqrt(np.add.reduce(deviations) / count))
