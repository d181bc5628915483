"""Columns of a streamed row group into model inputs: float32, column by column, without a float64 detour.

The in-memory path converts a whole table once, so a copy more or less per
column does not matter there; a streamed epoch converts every row again each
epoch, so numeric columns go from Arrow's buffer straight into their column of
the float32 output (zero-copy reads where Arrow allows), with the recipe's
offsets and scales applied in place. The values equal
:meth:`dlcli.data.preprocess.Preprocessing.table_features`'s.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dlcli.data.preprocess import Preprocessing, numeric_column
from dlcli.data.tables import is_number, numeric_type
from dlcli.errors import DlcliError
from dlcli.tasks import task_named

Rows = slice | np.ndarray  # the rows of a row group to keep: all of them, or their indices


def check_complete(table: pa.Table, columns: list[str], where: str) -> None:
    """No null in ``columns`` (a metadata count): streaming has no data.missing policy to apply to one."""
    for name in columns:
        nulls = table.column(name).null_count
        if nulls:
            first = int(np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False))[0])
            raise _missing(where, name, nulls, first)


def features_into(out: np.ndarray, table: pa.Table, pre: Preprocessing, rows: Rows, where: str,
                  check: bool = True) -> None:
    """Fill ``out`` (len(rows), F) float32 with the inputs of ``rows`` of ``table``, offset, scaled, standardised.

    ``check``: raise a :class:`DlcliError` naming the column and ``where`` for
    a NaN or infinite value (the first pass over the data checks; later epochs
    read the same rows again and need not).
    """
    for j, name in enumerate(pre.input_columns):
        column = table.column(name)
        if not numeric_type(column.type):
            numeric_column(column, name, where)  # raises the message for text, dates, ...
        values = column.to_numpy()  # zero-copy for one chunk without nulls (check_complete has ruled them out)
        out[:, j] = values[rows]
        if name in pre.offsets:
            out[:, j] -= np.float32(pre.offsets[name])
        if name in pre.scales:
            out[:, j] *= np.float32(pre.scales[name])
    if check and not np.isfinite(out.sum(axis=0)).all():  # one pass; a NaN or infinity makes its column's sum so
        for name, values in zip(pre.input_columns, out.T):
            bad = ~np.isfinite(values)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise _missing(where, name, int(bad.sum()), first)
    if pre.mean is not None:  # Preprocessing.standardize's arithmetic, on ``out`` whatever its memory order
        out -= np.asarray(pre.mean, np.float32)
        out /= np.asarray(pre.std, np.float32)


def target_values(table: pa.Table, target: str, rows: Rows) -> np.ndarray:
    """The raw targets of ``rows`` (numbers, booleans or text), before encoding."""
    return table.column(target).to_numpy(zero_copy_only=False)[rows]


def encoded_targets(pre: Preprocessing, values: np.ndarray, where: str) -> np.ndarray:
    """:meth:`Preprocessing.encode_target`, by binary search when the classes are numbers (no sort per row group)."""
    if not task_named(pre.task).classifies or values.dtype.kind not in "iuf" or not pre.label_index:
        return pre.encode_target(values, where)
    keys = sorted(pre.label_index, key=lambda k: float(k) if is_number(k) else np.inf)
    numbers = np.array([float(k) if is_number(k) else np.nan for k in keys])
    at = np.minimum(np.searchsorted(numbers, values), len(keys) - 1)
    if not (numbers[at] == values).all():  # a label not seen in training: encode_target says which
        return pre.encode_target(values, where)
    return np.array([pre.label_index[k] for k in keys], np.int32)[at]


def _missing(where: str, name: str, count: int, first: int) -> DlcliError:
    return DlcliError(f"{where}: column '{name}' has {count} missing, NaN or infinite value(s) (first at its row "
                      f"{first}). A streamed data set is read as it is (data.missing applies to data loaded in "
                      "memory): clean that part, or set data.stream = false to load the data in memory with "
                      "data.missing = \"drop\", \"mean\" or \"median\".")
