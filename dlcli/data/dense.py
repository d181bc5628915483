"""Numeric Parquet data read straight into one float32 matrix, already in split order.

The general path (:func:`dlcli.data._prepare_table`) holds the whole table in
Arrow, copies it per split with ``Table.take`` and converts each split
column by column: several copies of the data alive at once (10M HIGGS events
peaked at about 5 times their float32 size). When every input is a number and
nothing needs encoding or filling, the same numbers come from much less.
The seeded split is drawn first, from the row count in the Parquet footers;
then each batch of rows is converted into a small float32 block and its rows
are written where the split sends them, into one preallocated (N, F) matrix,
so that test, validation and training splits are consecutive slices of it,
each starting on a 64-byte boundary, where JAX on CPU uses the memory as it
is instead of copying it to the device.
Offsets, scales and standardisation then work in place, in the same float32
operations as the general path: the results are identical.

Anything unusual (text columns, label maps, missing or infinite values,
``data.missing`` other than "error") leaves this path for the general one,
which encodes it or explains the problem.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from dlcli.data.features import feature_columns, feature_names
from dlcli.data.aligned import ALIGNMENT, zeros_aligned
from dlcli.data.dataset import DataFiles
from dlcli.data.large import fed_data, plan_reading
from dlcli.data.preprocess import Preprocessing, feature_statistics, fit_labels
from dlcli.data.splits import Prepared, split_fractions, split_indices
from dlcli.data.tables import numeric_type, require_columns
from dlcli.recipe import DataConfig
from dlcli.tasks import infer_task, task_named

BATCH_ROWS = 1 << 16  # rows converted at a time: a few MB whatever the data set's size


def prepare_dense(config: DataConfig, seed: int, files: DataFiles | None, extra: dict[str, DataFiles | None],
                  task: str | None) -> Prepared | None:
    """The recipe's splits read straight into float32, or None when the data needs the general path."""
    layout = _layout(config, files)
    extra_layouts = {name: _layout(config, f) for name, f in extra.items()}
    if layout is None or any(extra_layout is None for extra_layout in extra_layouts.values()):
        return None
    features, target, columns = layout
    if any(extra_layout[:2] != (features, target) for extra_layout in extra_layouts.values()):
        return None
    rows = _rows(files, config.limit)
    if rows == 0:
        return None  # the general path says the data set is empty
    reading = plan_reading(config, rows, len(columns))
    if reading.stream or reading.processes > 1:  # streamed, or each process reading its own share
        return fed_data(config, seed, files, columns[:-1], columns[-1], task, reading)
    indices = split_indices(rows, seed, split_fractions(config, extra))
    starts, height = {}, 0  # each split's first row in the matrix: test, val, then train
    for name, idx in indices.items():
        starts[name] = height = _aligned_row(height, len(features))
        height += len(idx)
    destination = np.empty(rows, np.intp)  # where each row of the data goes
    for name, idx in indices.items():
        destination[idx] = starts[name] + np.arange(len(idx))
    read = _read_matrix(files, columns, config, features, rows, destination, height)
    if read is None:
        return None
    x, y = read
    parts = {name: (x[starts[name]:starts[name] + len(idx)], y[starts[name]:starts[name] + len(idx)])
             for name, idx in indices.items()}
    for name, extra_files in extra.items():
        read = _read_matrix(extra_files, extra_layouts[name][2], config, features, _rows(extra_files, config.limit))
        if read is None:
            return None
        parts[name] = read
    prepared = _preprocess(config, parts, features, target, task)
    prepared.reading = reading
    return prepared


def _layout(config: DataConfig, files: DataFiles | None) -> tuple[list[str], str, list[str]] | None:
    """(features, target, the columns to read for them) when this path applies to ``files``."""
    if files is None or files.format != "parquet" or config.one_hot or config.label_map or config.missing != "error":
        return None
    schema = files.dataset.schema
    own = [name for name in schema.names if name not in files.partitions]
    if config.column_names and len(config.column_names) != len(own):
        return None  # the general path says what is wrong
    physical = dict(zip(config.column_names, own)) if config.column_names else {}
    names = [*(config.column_names or own), *files.partitions]
    target = config.target
    if target is None or target not in names:
        return None
    if config.features:
        require_columns(files.where, names, config.features)
    features = feature_columns(config, names, target)
    columns = [physical.get(name, name) for name in [*features, target]]
    if not all(numeric_type(schema.field(column).type) for column in columns):
        return None
    return features, target, columns


def _rows(files: DataFiles, limit: int | None) -> int:
    rows = files.dataset.count_rows()  # from the footers, nothing decoded
    return min(rows, limit) if limit else rows


def _aligned_row(row: int, width: int) -> int:
    """The first row from ``row`` on whose float32 values start on a 64-byte boundary."""
    while row * width * 4 % ALIGNMENT:
        row += 1
    return row


def _read_matrix(files: DataFiles, columns: list[str], config: DataConfig, features: list[str], rows: int,
                 destination: np.ndarray | None = None, height: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """(height, F) float32 inputs, offsets and scales applied, and (height,) targets; row r of the data
    lands at ``destination[r]`` (default r), other rows are zeros. None when a value is missing or not finite."""
    if rows == 0:
        return None
    *inputs, target_column = columns
    offsets = np.array([config.offsets.get(name, 0.0) for name in features], np.float32)
    scales = np.array([config.scales.get(name, 1.0) for name in features], np.float32)
    height = height or rows
    x = zeros_aligned((height, len(inputs)))  # (N, F)
    y = np.zeros(height, files.dataset.schema.field(target_column).type.to_pandas_dtype())  # (N,)
    row = np.dtype((np.void, x.shape[1] * 4))  # one row as one item: numpy scatters items twice as fast as rows
    rows_of_x = x.view(row).reshape(-1)  # (N,)
    at = 0
    # Without pre-buffering, Arrow holds a few pages at a time rather than whole row groups.
    options = ds.ParquetFragmentScanOptions(pre_buffer=False)
    try:
        for batch in files.dataset.to_batches(columns=columns, batch_size=BATCH_ROWS, batch_readahead=2,
                                              fragment_readahead=1, fragment_scan_options=options):
            batch = batch.slice(0, rows - at)
            block = _block(batch, inputs, offsets, scales)  # (B, F)
            targets = batch.column(target_column)
            if block is None or targets.null_count:
                return None
            if destination is None:
                x[at:at + batch.num_rows] = block
                y[at:at + batch.num_rows] = targets.to_numpy(zero_copy_only=False)
            else:
                where = destination[at:at + batch.num_rows]
                np.put(rows_of_x, where, block.view(row).reshape(-1))
                y[where] = targets.to_numpy(zero_copy_only=False)
            at += batch.num_rows
            if at == rows:
                break
    except (pa.ArrowInvalid, OSError) as error:
        raise files.unreadable(error) from None
    if y.dtype.kind == "f" and np.isnan(y).any():
        return None
    return x, y


def _block(batch: pa.RecordBatch, inputs: list[str], offsets: np.ndarray, scales: np.ndarray) -> np.ndarray | None:
    """(B, F) float32 inputs of one batch, as the general path computes them; None if one is missing or not finite."""
    block = np.empty((batch.num_rows, len(inputs)), np.float32)
    for j, name in enumerate(inputs):
        column = batch.column(name)
        if column.null_count:
            return None
        values = column.to_numpy(zero_copy_only=False)
        # Through float64, as the general path converts, so that integers round alike.
        block[:, j] = values if values.dtype.kind == "f" else values.astype(np.float64)
    if offsets.any() or (scales != 1).any():
        block -= offsets
        block *= scales
    return block if np.isfinite(block.sum(axis=0)).all() else None


def _preprocess(config: DataConfig, parts: dict[str, tuple[np.ndarray, np.ndarray]], features: list[str],
                target: str, task: str | None) -> Prepared:
    """Fit the preprocessing on the training split and apply it to every split, as the general path does."""
    x_train, targets = parts["train"]
    task = task or infer_task(targets)
    pre = Preprocessing(kind="table", task=task, input_shape=[len(features)], target=target,
                        input_columns=list(features), offsets=dict(config.offsets), scales=dict(config.scales))
    if task_named(task).classifies:
        pre.classes, pre.label_index = fit_labels(targets, None, None, f"data.target '{target}'")
    pre.feature_names = feature_names(pre)
    if config.standardize:
        pre.mean, pre.std = feature_statistics(x_train)
    splits = {name: (pre.standardize(x, in_place=True), pre.encode_target(y, f"{name} split"))
              for name, (x, y) in parts.items() if len(x)}
    return Prepared(splits=splits, preprocessing=pre)
