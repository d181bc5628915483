"""Reading the user's files: CSV and Parquet through pyarrow, NPZ without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from dlcli.errors import DlcliError, choices_text, did_you_mean

TABLE_FORMATS = ("csv", "parquet")
FILE_FORMATS = (*TABLE_FORMATS, "npz")


def file_format(path: Path, declared: str | None = None) -> str:
    """The format of ``path``: the recipe's ``source`` when it names one, else the suffix."""
    if declared in FILE_FORMATS:
        return declared
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("pq", "parq"):
        suffix = "parquet"
    if suffix not in FILE_FORMATS:
        raise DlcliError(f"{path}: cannot tell the file format from the suffix '.{suffix}'. "
                         f"Use a .csv, .parquet or .npz file.")
    return suffix


def check_exists(path: Path, key: str) -> None:
    if not path.is_file():
        raise DlcliError(f"{key} = '{path}': no such file. Check the path (relative paths resolve against the "
                         "recipe file's folder).")


def read_table(path: Path, fmt: str, *, column_names: list[str] | None = None, columns: list[str] | None = None,
               limit: int | None = None) -> pa.Table:
    """A table from CSV or Parquet, reading only ``columns`` where the format allows.

    Args:
      column_names: names for the file's columns in order (for files without a
        header, or to rename Spark's ``_c0, _c1, ...``).
      columns: the columns needed; the others are not read (Parquet) or dropped.
      limit: read only the first ``limit`` rows.
    """
    try:
        table = _read_csv(path, column_names, columns) if fmt == "csv" else _read_parquet(path, column_names, columns, limit)
    except DlcliError:
        raise
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as error:
        raise DlcliError(f"{path}: cannot read it as {fmt.upper()}: {error}. Is the file complete and of that format?") from None
    if limit is not None:
        table = table.slice(0, limit)
    if table.num_rows == 0:
        raise DlcliError(f"{path}: the file has no rows of data.")
    return table


def _read_csv(path: Path, column_names: list[str] | None, columns: list[str] | None) -> pa.Table:
    from pyarrow import csv

    read = csv.ReadOptions(column_names=column_names) if column_names else csv.ReadOptions()
    if columns:
        header = column_names or csv.read_csv(path, read_options=csv.ReadOptions(block_size=1 << 16)).column_names
        require_columns(path, header, columns)
    convert = csv.ConvertOptions(include_columns=columns) if columns else csv.ConvertOptions()
    return csv.read_csv(path, read_options=read, convert_options=convert)


def _read_parquet(path: Path, column_names: list[str] | None, columns: list[str] | None, limit: int | None) -> pa.Table:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    if column_names:
        if len(column_names) != len(names):
            raise DlcliError(f"data.column_names gives {len(column_names)} names but {path} has {len(names)} columns. "
                             "Give one name per column, in file order.")
        rename = dict(zip(column_names, names))
        wanted = columns or column_names
        require_columns(path, column_names, wanted)
        table = _parquet_rows(file, [rename[c] for c in wanted], limit)
        return table.rename_columns(list(wanted))
    if columns:
        require_columns(path, names, columns)
    return _parquet_rows(file, columns, limit)


def _parquet_rows(file, columns: list[str] | None, limit: int | None) -> pa.Table:
    if limit is None:
        return file.read(columns=columns)
    batches, rows = [], 0
    for batch in file.iter_batches(batch_size=min(limit, 65536), columns=columns):
        batches.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            break
    return pa.Table.from_batches(batches, schema=batches[0].schema if batches else None)


def require_columns(path: Path | str, available: list[str], wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        hint = did_you_mean(missing[0], available)
        raise DlcliError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}.{hint} "
                         f"The file has: {choices_text(available) if len(available) <= 40 else f'{len(available)} columns'}.")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays ``x`` (and ``y`` where present) from an NPZ file, never unpickling."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        raise DlcliError(f"{path}: cannot read it as NPZ without pickle ({error}). Save plain numeric arrays "
                         "with np.savez(path, x=..., y=...).") from None
    except (OSError, EOFError) as error:
        raise DlcliError(f"{path}: not a readable NPZ file ({error}).") from None
    if "x" not in arrays:
        raise DlcliError(f"{path}: no array named 'x' (found: {choices_text(arrays) or 'none'}). "
                         "Save inputs as x and targets as y: np.savez(path, x=..., y=...).")
    return arrays
