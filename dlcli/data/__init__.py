"""Data: from a recipe's ``[data]`` section to preprocessed train/val/test arrays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from dlcli.data.bundled import DATASETS, Raw
from dlcli.data.preprocess import (
    has_missing,
    Preprocessing,
    feature_statistics,
    fit_labels,
    missing_rows,
    numeric_column,
)
from dlcli.data.features import feature_columns, feature_names
from dlcli.data.dataset import DataFiles, open_dataset
from dlcli.data.dense import prepare_dense
from dlcli.data.large import refuse_stream
from dlcli.data.splits import Prepared, split_fractions, split_indices
from dlcli.data.tables import FILE_FORMATS, read_dataset, read_npz, require_columns
from dlcli.errors import DlcliError, choices_text, did_you_mean
from dlcli.recipe import DataConfig
from dlcli.tasks import infer_task, task_named

__all__ = ["Prepared", "load_data", "load_raw"]


def load_raw(config: DataConfig, seed: int, resolve: Callable[[str], Path], path_key: str = "path",
             path: str | None = None) -> Raw:
    """The data set ``config.source`` names, or the data at ``path`` (default ``config.path``)."""
    files = data_files(config, resolve, path_key, path)
    return bundled_data(config, seed) if files is None else read_raw(config, files)


def data_files(config: DataConfig, resolve: Callable[[str], Path], path_key: str = "path",
               path: str | None = None) -> DataFiles | None:
    """The file, folder or glob at ``path`` (default ``config.path``); None when ``config.source`` is bundled."""
    path = path if path is not None else config.path
    if config.delimiter and config.source != "csv":
        raise DlcliError(f"data.delimiter = '{config.delimiter}' applies to CSV files, but data.source = "
                         f"'{config.source}'. Remove data.delimiter, or set data.source = \"csv\".")
    if config.source not in FILE_FORMATS:
        if config.source not in DATASETS:
            raise DlcliError(f"data.source = '{config.source}' is neither a bundled data set nor a file format."
                             f"{did_you_mean(config.source, DATASETS.names())} Choose one of "
                             f"{choices_text(DATASETS.names())}, or csv, parquet, npz with data.path.")
        if path_key == "path" and config.path is not None:
            raise DlcliError(f"data.path = '{config.path}' is set but data.source = '{config.source}' is a bundled "
                             "data set, so the path would be ignored. Remove data.path, or set data.source to "
                             "csv, parquet or npz.")
        return None
    if config.options:
        raise DlcliError(f"data.options only applies to bundled data sets; data.source = '{config.source}' reads "
                         f"a file. Remove [data.options].")
    if path is None:
        raise DlcliError(f"data.source = '{config.source}' needs data.path, the file to read.")
    return open_dataset(resolve(path), f"data.{path_key}", config.source, config.delimiter)


def bundled_data(config: DataConfig, seed: int) -> Raw:
    try:
        return DATASETS.build(config.source, config.options, seed, where="data.options")
    except ValueError as error:  # the generator's own range checks (scikit-learn's, numpy's)
        raise DlcliError(f"data.options for '{config.source}': {error}. Check the values in [data.options] "
                         f"(dlcli recipes shows examples).") from None


def read_raw(config: DataConfig, files: DataFiles) -> Raw:
    """The arrays (NPZ) or the table (CSV, Parquet) in ``files``, with the columns the recipe needs."""
    if files.format == "npz":
        arrays = read_npz(files.files[0])
        return Raw(x=arrays["x"], y=arrays.get("y"))
    columns = None
    if config.features is not None:
        columns = list(dict.fromkeys([*config.features, *([config.target] if config.target else [])]))
    table = read_dataset(files, column_names=config.column_names, columns=columns, limit=config.limit,
                         delimiter=config.delimiter)
    return Raw(table=table, target=config.target)


def load_data(config: DataConfig, seed: int, resolve: Callable[[str], Path], task: str | None = None) -> Prepared:
    """Read, split (seeded) and preprocess the data a recipe declares.

    Numeric Parquet data goes straight into one float32 matrix (:mod:`dlcli.data.dense`);
    the rest through an Arrow table, which can encode text and fill missing values.

    Args:
      config: the recipe's ``[data]`` section.
      seed: the recipe seed; it fixes the split.
      resolve: turns a recipe path into a file path.
      task: the name of a task (:data:`dlcli.tasks.TASKS`); inferred from the target when None.
    """
    files = data_files(config, resolve)
    extra_files = {name: data_files(config, resolve, f"{name}_path", getattr(config, f"{name}_path"))
                   for name in ("val", "test") if getattr(config, f"{name}_path")}
    if task is None or task_named(task).supervised:
        prepared = prepare_dense(config, seed, files, extra_files, task)
        if prepared is not None:
            return prepared
    if config.stream is True:
        refuse_stream(config, files)
    raw = bundled_data(config, seed) if files is None else read_raw(config, files)
    extra = {name: bundled_data(config, seed) if f is None else read_raw(config, f) for name, f in extra_files.items()}
    if task is not None and not task_named(task).supervised:
        from dlcli.data.unsupervised import prepare_unsupervised

        return prepare_unsupervised(config, seed, raw, extra, task)
    if raw.table is not None:
        return _prepare_table(config, seed, raw, extra, task)
    return _prepare_arrays(config, seed, raw, extra, task)


def _prepare_table(config: DataConfig, seed: int, raw: Raw, extra: dict[str, Raw], task: str | None) -> Prepared:
    table = raw.table
    target = config.target or raw.target
    if target is None:
        raise DlcliError("data.target is not set: name the column to predict, e.g. target = \"label\".")
    require_columns("data", table.column_names, [target])
    features = feature_columns(config, table.column_names, target)
    tables = {"all": table, **{name: r.table for name, r in extra.items()}}
    for name, part in tables.items():
        if part is None:
            raise DlcliError(f"data.{name}_path must be a table like data.path (CSV or Parquet).")
        label = f"data.path '{config.path}'" if name == "all" else f"data.{name}_path"
        tables[name] = _handle_missing(part, features, target, config.missing, label)
    indices = split_indices(tables["all"].num_rows, seed, split_fractions(config, extra))
    parts = {name: tables["all"].take(pa.array(idx)) for name, idx in indices.items()}
    parts.update({name: t for name, t in tables.items() if name != "all"})
    train = parts["train"]
    targets = train.column(target).to_numpy(zero_copy_only=False)
    task = task or infer_task(targets, labelled=config.label_map is not None)
    pre = Preprocessing(kind="table", task=task, input_shape=[], target=target, input_columns=list(features),
                        offsets=dict(config.offsets), scales=dict(config.scales))
    if task_named(task).classifies:
        pre.classes, pre.label_index = fit_labels(targets, config.label_map, raw.classes,
                                                    f"data.target '{target}'")
    for name in config.one_hot:
        pre.one_hot[name] = sorted({str(v) for v in train.column(name).to_pylist()})
    if config.missing in ("mean", "median"):
        reduce = np.nanmean if config.missing == "mean" else np.nanmedian
        for name in features:
            if name not in pre.one_hot:
                values = numeric_column(train.column(name), name, "training split")  # text: says use one_hot
                pre.impute[name] = float(reduce(values)) if np.isfinite(values).any() else 0.0
    pre.feature_names = feature_names(pre)
    x_train = pre.table_features(train, "training split")  # raw: nothing fitted to standardise with yet
    pre.input_shape = [x_train.shape[1]]
    if config.standardize:
        skip = np.array([name.split("=")[0] in pre.one_hot for name in pre.feature_names])
        pre.mean, pre.std = feature_statistics(x_train, skip)
    splits = {name: (pre.standardize(x_train, in_place=True) if name == "train" else pre.table_features(part, f"{name} split"),
                     pre.encode_target(part.column(target).to_numpy(zero_copy_only=False), f"{name} split"))
              for name, part in parts.items() if part.num_rows}
    return Prepared(splits=splits, preprocessing=pre)


def _handle_missing(table: pa.Table, features: list[str], target: str, policy: str, label: str) -> pa.Table:
    """Apply data.missing to ``table`` (``label`` names its file in messages)."""
    if not has_missing(table, [*features, target]):
        return table
    mask = missing_rows(table, [*features, target])
    if not mask.any():
        return table
    if policy == "error":
        raise DlcliError(f"{label}: missing or NaN values in column(s) {_missing_counts(table, [*features, target])}. "
                         "Set data.missing = \"drop\" to drop those rows, or \"mean\"/\"median\" to fill features "
                         "from the training split.")
    drop = mask if policy == "drop" else missing_rows(table, [target])
    if drop.all() and policy == "drop":
        raise DlcliError(f"{label}: data.missing = \"drop\" dropped all {table.num_rows} rows: every row has a "
                         f"missing or NaN value in column(s) {_missing_counts(table, [*features, target])}. Leave "
                         "the emptiest columns out of data.features, or set data.missing = \"mean\" or \"median\" "
                         "to fill features instead of dropping rows.")
    if drop.all():
        raise DlcliError(f"{label}: the target column '{target}' has no values (all {table.num_rows} rows are missing "
                         "or NaN). Check that data.target names the column to predict.")
    return table.filter(pa.array(~drop))


def _missing_counts(table: pa.Table, columns: list[str]) -> str:
    """``'a' (3 rows), 'b' (1 rows)`` for the columns with missing values, the emptiest first."""
    counts = {c: int(missing_rows(table, [c]).sum()) for c in columns}
    return ", ".join(f"'{c}' ({n} rows)" for c, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n)


def check_arrays(x: np.ndarray, y: np.ndarray, where: str) -> None:
    """x is (N, ...) numbers with at least one value per example; y is N finite numbers or labels."""
    x, y = np.asarray(x), np.asarray(y)
    for name, array in (("x", x), ("y", y)):
        if array.ndim == 0:
            raise DlcliError(f"{where}: the NPZ array '{name}' is a single value; it must hold one entry per example, "
                             f"shape (N, ...).")
        if array.dtype.kind not in "biuf" and not (name == "y" and array.dtype.kind in "US"):
            raise DlcliError(f"{where}: the NPZ array '{name}' holds {array.dtype} values; it must hold real numbers"
                             f"{' (or text labels)' if name == 'y' else ''}.")
    if len(x) != len(y):
        raise DlcliError(f"{where}: x has {len(x)} examples but y has {len(y)}. They must match.")
    if x.ndim > 1 and np.prod(x.shape[1:]) == 0:
        raise DlcliError(f"{where}: x has shape {list(x.shape)}: no input values per example.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DlcliError(f"{where}: y has {int((~np.isfinite(y)).sum())} NaN or infinite targets (first at row "
                         f"{int(np.flatnonzero(~np.isfinite(y))[0])}). Clean them.")


def _prepare_arrays(config: DataConfig, seed: int, raw: Raw, extra: dict[str, Raw], task: str | None) -> Prepared:
    for key in ("features", "one_hot", "offsets", "scales", "column_names"):
        if getattr(config, key):
            raise DlcliError(f"data.{key} applies to tables (CSV, Parquet) but this data is an array (NPZ or "
                             f"images). Remove data.{key}.")
    if raw.y is None:
        raise DlcliError("data: the NPZ file has no 'y' array of targets. Save it with np.savez(path, x=..., y=...).")
    check_arrays(raw.x, raw.y, config.path or f"data.source = '{config.source}'")
    indices = split_indices(len(raw.x), seed, split_fractions(config, extra))
    parts = {name: (raw.x[idx], raw.y[idx]) for name, idx in indices.items()}
    parts.update({name: (r.x, r.y) for name, r in extra.items()})
    y_train = np.asarray(parts["train"][1])
    task = task or infer_task(y_train)
    pre = Preprocessing(kind="array", task=task, input_shape=list(np.shape(raw.x)[1:]),
                        target_shape=[] if task_named(task).classifies else list(np.shape(raw.y)[1:]))
    if task_named(task).classifies:
        pre.classes, pre.label_index = fit_labels(y_train, config.label_map, raw.classes, "data.y")
    if config.standardize:
        pre.mean, pre.std = feature_statistics(pre.array_features(parts["train"][0], "training split"))
    splits = {name: (pre.array_features(x, f"{name} split"), pre.encode_target(y, f"{name} split"))
              for name, (x, y) in parts.items() if len(x)}
    return Prepared(splits=splits, preprocessing=pre)
