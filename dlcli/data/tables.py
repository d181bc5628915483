"""Reading the user's files: CSV and Parquet through pyarrow, NPZ without pickle."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from dlcli.errors import DlcliError, choices_text, did_you_mean

if TYPE_CHECKING:
    from dlcli.data.dataset import DataFiles

TABLE_FORMATS = ("csv", "parquet")
FILE_FORMATS = (*TABLE_FORMATS, "npz")
COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")  # pyarrow reads CSV through these by suffix


def is_number(text: str) -> bool:
    """True for text that reads as a number (a label or a CSV field)."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def numeric_type(kind: pa.DataType) -> bool:
    """Whether Arrow values of ``kind`` are numbers a model can read as they are (integers, floats, booleans)."""
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def suffix_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSIONS and suffixes[-2] == ".csv":
        return "csv"  # UCI ships HIGGS as HIGGS.csv.gz
    suffix = suffixes[-1].lstrip(".") if suffixes else ""
    suffix = "parquet" if suffix in ("pq", "parq") else suffix
    return suffix if suffix in FILE_FORMATS else None


def file_format(path: Path, declared: str | None = None) -> str:
    """The format of ``path``: the recipe's ``source`` when it names one, else the suffix.

    A declared format that contradicts a known suffix is an error rather than a
    guess, so that ``--set data.path=x.csv`` on a Parquet recipe says what to fix.
    """
    from_suffix = suffix_format(path)
    if declared in FILE_FORMATS:
        if from_suffix is not None and from_suffix != declared:
            raise DlcliError(f"data.path '{path}' looks like a {from_suffix.upper()} file but data.source = "
                             f"'{declared}'. Set data.source = \"{from_suffix}\" (--set data.source={from_suffix}), "
                             "or rename the file.")
        return declared
    if from_suffix is None:
        raise DlcliError(f"{path}: cannot tell the file format from the suffix '{path.suffix}'. "
                         f"Use a .csv, .csv.gz, .parquet or .npz file.")
    return from_suffix


def read_table(path: Path, fmt: str, *, column_names: list[str] | None = None, columns: list[str] | None = None,
               limit: int | None = None, delimiter: str | None = None) -> pa.Table:
    """A table from CSV or Parquet, reading only ``columns`` where the format allows.

    Args:
      column_names: names for the file's columns in order (for files without a
        header, or to rename Spark's ``_c0, _c1, ...``).
      columns: the columns needed; the others are not read (Parquet) or dropped.
      limit: read only the first ``limit`` rows.
      delimiter: a CSV's field separator; by default :func:`csv_delimiter` reads it from the header.
    """
    try:
        if fmt == "csv":
            table = _read_csv(path, column_names, columns, limit, csv_delimiter(path, delimiter))
        else:
            table = _read_parquet(path, column_names, columns, limit)
        table.column_names  # noqa: B018  (decodes the header: a non-UTF-8 name fails here, not later)
    except DlcliError:
        raise
    except UnicodeDecodeError as error:
        raise DlcliError(f"{path}: not UTF-8 text (byte {error.start} is invalid). Save the file as UTF-8 CSV.") from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as error:
        raise DlcliError(f"{path}: cannot read it as {fmt.upper()}: {error}. Is the file complete and of that format?") from None
    if limit is not None:
        table = table.slice(0, limit)
    if table.num_rows == 0:
        raise DlcliError(f"{path}: the file has no rows of data.")
    undecodable = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if fmt == "csv" and undecodable:  # pyarrow keeps invalid UTF-8 as bytes rather than failing
        raise DlcliError(f"{path}: column(s) {', '.join(map(repr, undecodable))} hold bytes that are not UTF-8 text. "
                         "Save the file as UTF-8.")
    return table


def read_dataset(data: DataFiles, *, column_names: list[str] | None = None, columns: list[str] | None = None,
                 limit: int | None = None, delimiter: str | None = None) -> pa.Table:
    """A table from every part of ``data``, with :func:`read_table`'s options; one plain file is read by it.

    ``column_names`` name the parts' own columns; partition columns (``key=value``
    folders) keep their names and come last.
    """
    if data.is_file:
        return read_table(data.files[0], data.format, column_names=column_names, columns=columns, limit=limit,
                          delimiter=delimiter)
    dataset = _csv_dataset(data, column_names, delimiter) if data.format == "csv" else data.dataset
    own = [name for name in dataset.schema.names if name not in data.partitions]
    if column_names and data.format == "parquet" and len(column_names) != len(own):
        raise DlcliError(f"data.column_names gives {len(column_names)} names but the parts of {data.where} have "
                         f"{len(own)} columns. Give one name per column, in file order, or --set "
                         "data.column_names=[] to use the files' own names.")
    physical = dict(zip(column_names, own)) if column_names and data.format == "parquet" else {}
    available = [*(column_names or own), *data.partitions]
    wanted = columns or available
    require_columns(data.where, available, wanted)
    try:
        physical_columns = [physical.get(name, name) for name in wanted]
        table = dataset.head(limit, columns=physical_columns) if limit else dataset.to_table(columns=physical_columns)
    except (pa.ArrowInvalid, OSError) as error:
        raise data.unreadable(error) from None
    if table.num_rows == 0:
        raise DlcliError(f"{data.where}: the data set has no rows of data.")
    return table.rename_columns(wanted)


def _csv_dataset(data: DataFiles, column_names: list[str] | None, delimiter: str | None):
    """CSV parts read with the first part's delimiter and header, integer columns as floats (a part whose
    values all happen to be whole numbers must not make the others fail to convert)."""
    import pyarrow.dataset as ds
    from pyarrow import csv

    first = data.files[0]
    separator = csv_delimiter(first, delimiter)
    read = csv.ReadOptions()
    if column_names:
        read = csv.ReadOptions(column_names=column_names, skip_rows=1 if _has_header(first, len(column_names),
                                                                                     separator) else 0)
    file_format = ds.CsvFileFormat(parse_options=csv.ParseOptions(delimiter=separator), read_options=read)
    inferred = data.with_format(file_format).schema
    schema = pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_integer(f.type) and f.name not in
                        data.partitions else f for f in inferred])
    return data.with_format(file_format, schema)


def _read_csv(path: Path, column_names: list[str] | None, columns: list[str] | None, limit: int | None,
              delimiter: str) -> pa.Table:
    from pyarrow import csv

    read = csv.ReadOptions()
    parse = csv.ParseOptions(delimiter=delimiter)
    if column_names:
        # A file with its own header row gets renamed; a header-less one (UCI's HIGGS) read as it is.
        skip = 1 if _has_header(path, len(column_names), delimiter) else 0
        read = csv.ReadOptions(column_names=column_names, skip_rows=skip)
    if columns:
        header = column_names or peek_columns(path, "csv", delimiter)  # the header only, not the whole file
        require_columns(path, header, columns)
    convert = csv.ConvertOptions(include_columns=columns) if columns else csv.ConvertOptions()
    if limit is None:
        return csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    # Stream only the first ``limit`` rows: HIGGS.csv.gz has 11 million.
    reader = csv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            break
    return pa.Table.from_batches(batches, schema=reader.schema)


def peek_columns(path: Path, fmt: str, delimiter: str | None = None) -> list[str]:
    """The file's column names (a CSV's first row, header or not) without reading its data."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).schema_arrow.names
    import csv as text_csv

    return next(text_csv.reader([_first_line(path)], delimiter=csv_delimiter(path, delimiter)), [])


SEPARATORS = (";", "\t", "|")  # what CSV files use instead of a comma (a comma is a decimal mark in much of Europe)


def csv_delimiter(path: Path, declared: str | None = None) -> str:
    """The field separator: ``declared`` (data.delimiter), else a comma if the header line has one,
    else the most frequent of ``;``, tab and ``|`` in it, else a comma."""
    if declared:
        return declared
    line = _first_line(path)
    if "," in line:
        return ","
    counts = {separator: line.count(separator) for separator in SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _first_line(path: Path) -> str:
    with pa.input_stream(str(path), compression="detect") as stream:
        return stream.read(1 << 16).split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")


def _has_header(path: Path, expected: int, delimiter: str) -> bool:
    """Whether the CSV's first row is a header: no field of it reads as a number."""
    fields = peek_columns(path, "csv", delimiter)
    if len(fields) != expected:
        raise DlcliError(f"data.column_names gives {expected} names but {path} has {len(fields)} columns. "
                         "Give one name per column, in file order, or --set data.column_names=[] to use the "
                         "file's own header.")
    return not any(is_number(field) for field in fields)


def _read_parquet(path: Path, column_names: list[str] | None, columns: list[str] | None, limit: int | None) -> pa.Table:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    if column_names:
        if len(column_names) != len(names):
            raise DlcliError(f"data.column_names gives {len(column_names)} names but {path} has {len(names)} columns. "
                             "Give one name per column, in file order, or --set data.column_names=[] to use the "
                             "file's own header.")
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
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DlcliError(f"{path}: not a readable NPZ file ({error}).") from None
    if "x" not in arrays:
        raise DlcliError(f"{path}: no array named 'x' (found: {choices_text(arrays) or 'none'}). "
                         "Save inputs as x and targets as y: np.savez(path, x=..., y=...).")
    return arrays
