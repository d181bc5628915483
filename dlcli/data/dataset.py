"""Finding a data set's files: one file, a folder of parts, or a glob.

Spark writes a table as a folder, not a file: ``part-00000-<uuid>-c000.snappy.parquet``
and its siblings, beside a ``_SUCCESS`` marker and hidden ``.part-....crc``
checksums, with Hive-style ``key=value`` subfolders when the table is
partitioned. :func:`open_dataset` turns what ``data.path`` names into the list
of data files and one ``pyarrow.dataset.Dataset`` over them, and checks the
parts against each other before anything is read: a part that is not Parquet,
or whose columns differ from the first part's, would otherwise surface as an
Arrow error deep in training's preparation, or not at all.
"""

from __future__ import annotations

import functools
import glob
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from dlcli.data.tables import FILE_FORMATS, file_format, is_number, peek_columns, suffix_format
from dlcli.errors import DlcliError

GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class DataFiles:
    """The data files ``where`` names, their format, and a dataset over them."""

    where: Path  # what the recipe named: a file, a folder or a glob
    format: str  # "csv", "parquet" or "npz"
    files: list[Path]  # in the order their rows are read
    partitions: list[str]  # columns that come from key=value folder names
    base: Path | None = None  # the folder whose key=value subfolders are partitions

    @functools.cached_property
    def dataset(self) -> ds.Dataset | None:
        """One dataset over every file (None for NPZ, arrays rather than a table); built when first asked,
        so that a single CSV file is read as before, by :func:`dlcli.data.tables.read_table`."""
        return None if self.format == "npz" else _table_dataset(self.files, self.format, self.base)

    @property
    def is_file(self) -> bool:
        """Whether ``where`` is one plain file (read as before, without the dataset machinery)."""
        return self.where.is_file()

    def unreadable(self, error: Exception) -> DlcliError:
        """The error to show when reading failed: it names the first part that cannot be read (a part
        with a sound footer and damaged data fails only here, not when the data set is opened)."""
        bad = next((fragment.path for fragment in self.dataset.get_fragments() if not _readable(fragment)),
                   str(self.where))
        reason = " ".join(str(error).split()).rstrip(".")  # Arrow's text spans lines
        return DlcliError(f"{bad}: cannot read it as {self.format.upper()}: {reason}. Copy the part again from the "
                          "source, or move it out of the data set.")

    def with_format(self, file_format: ds.FileFormat, schema: pa.Schema | None = None) -> ds.Dataset:
        """The same files read with other options (a CSV's delimiter and column names) and column types."""
        return _table_dataset(self.files, file_format, self.base, schema)


def open_dataset(path: Path, key: str, declared: str | None = None, delimiter: str | None = None) -> DataFiles:
    """The data at ``path``: a file, a folder of parts (Spark, Hive) or a glob (``parts/*.csv.gz``).

    Args:
      path: the resolved path; a glob when it has no file of its own and contains ``*``, ``?`` or ``[``.
      key: the recipe key (or argument) that named it, for messages.
      declared: the recipe's ``data.source`` when it names a file format.
      delimiter: a CSV's field separator (``data.delimiter``), to compare the parts' header lines.
    """
    if path.is_file():
        return DataFiles(path, file_format(path, declared), [path], [])
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        if not files:
            raise DlcliError(f"{key} = '{path}' is a folder with no data files (hidden files and names starting "
                             "with '_' or '.', like _SUCCESS, are skipped). Point it at the folder Spark wrote the "
                             "part-*.parquet files to, or at a file.")
        base = path
    elif any(c in str(path) for c in GLOB_CHARACTERS):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                       if Path(p).is_file() and not Path(p).name.startswith(("_", ".")))
        if not files:
            raise DlcliError(f"{key} = '{path}': the pattern matches no files. Check the folder and the pattern "
                             "(e.g. parts/*.csv.gz); relative paths resolve against the recipe file's folder.")
        base = _glob_base(path)
    elif key.startswith("data."):
        raise DlcliError(f"{key} = '{path}': no such file or folder. Check the path, or point the recipe at your "
                         f"data with --set {key}=PATH (a file, a folder of parts, or a glob such as "
                         "'parts/*.parquet'; relative paths resolve against the recipe file's folder; for a "
                         "bundled recipe, against the current folder).")
    else:
        raise DlcliError(f"{key} '{path}': no such file or folder. Check the path.")
    fmt = _parts_format(path, key, files, declared)
    if fmt == "parquet":
        _part_schema(files[0])  # a corrupt first part is named here, before Arrow reads it
    keys = {part.split("=", 1)[0] for f in files for part in f.relative_to(base).parts[:-1] if "=" in part}
    schema = _table_dataset(files, fmt, base).schema
    data = DataFiles(path, fmt, files, [name for name in schema.names if name in keys], base)
    if fmt == "parquet":
        _check_parquet_parts(files, schema, data.partitions)
    else:
        _check_csv_headers(files, delimiter)
    return data


def _readable(fragment: ds.Fragment) -> bool:
    try:
        for _ in fragment.to_batches():
            pass
    except (pa.ArrowInvalid, OSError):
        return False
    return True


def _hidden(relative: Path) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.parts)


def _glob_base(pattern: Path) -> Path:
    """The folder above the pattern's first wildcard: key=value folders below it become columns."""
    parts = pattern.parts
    fixed = next(i for i, part in enumerate(parts) if any(c in part for c in GLOB_CHARACTERS))
    return Path(*parts[:fixed]) if fixed else Path(".")


def _parts_format(where: Path, key: str, files: list[Path], declared: str | None) -> str:
    """The one format of a folder's or glob's files, from their suffixes."""
    formats = {}
    for file in files:
        fmt = suffix_format(file)
        if fmt is None:
            raise DlcliError(f"{key} = '{where}' holds '{file}', which is not a data file (cannot tell its format "
                             f"from the suffix '{file.suffix}'). Move it out, or start its name with '_' so that it "
                             "is skipped; parts are .parquet, .csv or .csv.gz files.")
        formats.setdefault(fmt, file)
    if len(formats) > 1:
        found = ", ".join(f"{fmt.upper()} ('{file}')" for fmt, file in formats.items())
        raise DlcliError(f"{key} = '{where}' mixes data formats: {found}. Keep one format per data set, or name "
                         "the parts to read with a glob such as 'folder/*.parquet'.")
    fmt = next(iter(formats))
    if fmt == "npz":
        raise DlcliError(f"{key} = '{where}' holds NPZ files; a folder or glob must hold CSV or Parquet parts. "
                         "Point it at one .npz file.")
    if declared in FILE_FORMATS and declared != fmt:
        raise DlcliError(f"{key} = '{where}' holds {fmt.upper()} files but data.source = '{declared}'. Set "
                         f"data.source = \"{fmt}\" (--set data.source={fmt}).")
    return fmt


def _table_dataset(files: list[Path], file_format: str | ds.FileFormat, base: Path | None = None,
                   schema: pa.Schema | None = None) -> ds.Dataset:
    try:
        return ds.dataset([str(f) for f in files], format=file_format, schema=schema,
                          partitioning="hive" if base else None, partition_base_dir=str(base) if base else None)
    except (pa.ArrowInvalid, OSError) as error:  # Arrow reads the first part's schema here
        kind = file_format if isinstance(file_format, str) else file_format.default_extname
        if kind == "parquet":
            error = _parquet_error(files[0]) or error  # Parquet's own words, without Arrow's wrapping
        raise DlcliError(f"{files[0]}: cannot read it as {kind.upper()}: {error}. Is the file complete and of "
                         "that format?") from None


def _parquet_error(file: Path) -> Exception | None:
    import pyarrow.parquet as pq

    try:
        pq.read_schema(file)
    except (pa.ArrowInvalid, OSError) as error:
        return error
    return None


def _part_schema(file: Path) -> pa.Schema:
    """A Parquet part's schema, from its footer alone."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(file)
    except (pa.ArrowInvalid, OSError) as error:
        raise DlcliError(f"{file}: this part is not readable as Parquet ({error}). It may be truncated or still "
                         "being written: copy it again from the source, or move the part out of the data set "
                         "and train on the others.") from None


def _check_parquet_parts(files: list[Path], schema: pa.Schema, partitions: list[str]) -> None:
    """Every part has the first part's columns with the same types (its footer only is read)."""
    expected = [field for field in schema if field.name not in partitions]
    for file in files[1:]:
        part = _part_schema(file)
        for field in expected:
            if field.name not in part.names:
                raise DlcliError(f"{file}: this part has no column '{field.name}', which the first part "
                                 f"('{files[0].name}') has. The parts of a data set must share their columns: "
                                 "write them again with one schema, or leave this part out (a glob can pick "
                                 "the parts to read).")
            found = part.field(field.name).type
            if found != field.type:
                raise DlcliError(f"{file}: column '{field.name}' is {found} in this part but {field.type} in the "
                                 f"first part ('{files[0].name}'). The parts of a data set must share their column "
                                 "types: write them again with one schema (e.g. cast the column in Spark before "
                                 "writing).")


def _check_csv_headers(files: list[Path], delimiter: str | None) -> None:
    """Every CSV part starts with the first part's header line (names, or as many fields)."""
    first = peek_columns(files[0], "csv", delimiter)
    named = not any(is_number(field) for field in first)  # else a header-less part: its first row is data
    for file in files[1:]:
        header = peek_columns(file, "csv", delimiter)
        missing = [name for name in first if name not in header] if named else []
        if len(header) != len(first) or missing:
            what = f"no column '{missing[0]}'" if missing else f"{len(header)} columns, not {len(first)}"
            raise DlcliError(f"{file}: this part has {what}, unlike the first part ('{files[0].name}'). The "
                             "parts of a data set must share their columns: write them again with one header, "
                             "or leave this part out (a glob can pick the parts to read).")
