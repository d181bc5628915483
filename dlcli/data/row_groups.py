"""Row groups: the units a streamed Parquet data set is shared, split and shuffled by.

A row group is the smallest piece of a Parquet file that can be read alone,
and its row count is in the file's footer. Everything a streamed run decides
before reading data (which process reads which rows, which rows are held
out, how many training rows each process has) is therefore a function of the
footers and the seed: every process can compute every other process's share
without reading a single row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dlcli.errors import DlcliError

TRAIN, VAL, TEST = 0, 1, 2  # a row's split code
COLUMNS_AT_ONCE = 8  # columns of a row group decoded together (see Parts.read)
SPLIT_CODES = {"train": TRAIN, "val": VAL, "test": TEST}


@dataclass(frozen=True)
class Unit:
    """One row group of one part file: the unit of sharing, splitting and shuffling."""

    index: int  # its place in the sorted list of every unit of the data set
    path: str
    row_group: int
    rows: int


class Parts:
    """The part files of a data set, their footers, and the row groups they hold (sorted by path, then row group)."""

    def __init__(self, source: ds.Dataset | Sequence[str | Path]):
        if isinstance(source, ds.Dataset):
            if not isinstance(source, ds.FileSystemDataset):
                raise TypeError(f"a streamed data set must be read from Parquet files, not a {type(source).__name__}")
            paths, self.filesystem = sorted(source.files), source.filesystem
        else:
            paths, self.filesystem = sorted(str(p) for p in source), pafs.LocalFileSystem()
        if not paths:
            raise DlcliError("data.path: the Parquet data set has no part files. Check the folder or glob.")
        self.footers = {path: self._footer(path) for path in paths}
        self.units = [Unit(i, path, group, rows) for i, (path, group, rows) in enumerate(
            (path, group, footer.row_group(group).num_rows)
            for path, footer in self.footers.items() for group in range(footer.num_row_groups))]

    def _footer(self, path: str) -> pq.FileMetaData:
        try:
            with self.filesystem.open_input_file(path) as file:
                return pq.read_metadata(file)
        except (OSError, pa.ArrowException) as error:
            raise DlcliError(f"data part '{path}': cannot read its Parquet footer ({error}). The file is damaged or "
                             "not Parquet: rewrite it, or remove it from the data set.") from None

    def require_columns(self, columns: Sequence[str]) -> None:
        """Every part holds every column in ``columns``: checked on the footers, before any data is read."""
        for path, footer in self.footers.items():
            missing = [c for c in columns if c not in footer.schema.names]
            if missing:
                names = footer.schema.names
                raise DlcliError(f"data part '{path}' has no column(s) {', '.join(map(repr, missing))} (it has "
                                 f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''}). Every part of a data set must hold the same columns: rewrite that part, or "
                                 "remove it from the data set.")

    def read(self, unit: Unit, columns: Sequence[str]) -> pa.Table:
        """The rows of ``unit``; a part that cannot be read is the user's to fix, so the error names it.

        One thread per row group: readers overlap whole row groups, and
        pyarrow's own column threads cost twice the CPU time for the same data.
        The columns are read :data:`COLUMNS_AT_ONCE` at a time: reading a row
        group of 250,000 HIGGS events (a 28 MiB table) peaked 140 MiB above
        where it started whole, 60 MiB eight columns at a time.
        """
        try:
            with self.filesystem.open_input_file(unit.path) as file:
                parquet = pq.ParquetFile(file, metadata=self.footers[unit.path])
                parts = [parquet.read_row_group(unit.row_group, list(columns[at:at + COLUMNS_AT_ONCE]), use_threads=False)
                         for at in range(0, len(columns), COLUMNS_AT_ONCE)]
                return pa.Table.from_arrays([c for part in parts for c in part.columns],
                                            names=[n for part in parts for n in part.column_names])
        except (OSError, pa.ArrowException) as error:
            raise DlcliError(f"data part '{unit.path}': row group {unit.row_group} cannot be read ({error}). The file "
                             "is damaged: rewrite it, or remove it from the data set.") from None


def process_units(units: Sequence[Unit], process: int, processes: int) -> list[Unit]:
    """Process ``process`` of ``processes`` owns units p, p + P, p + 2P, ...: interleaved, so shares stay even."""
    return list(units[process::processes])


def held_out_counts(rows: int, fractions: dict[str, float]) -> dict[str, int]:
    """Rows of a unit held out per split, rounded per unit: known from the row count alone."""
    counts = {name: int(round(rows * fraction)) for name, fraction in fractions.items() if fraction}
    excess = sum(counts.values()) - rows
    for name in list(counts)[::-1]:  # rounding up both fractions of a tiny unit may claim more rows than it has
        taken = min(excess, counts[name]) if excess > 0 else 0
        counts[name] -= taken
        excess -= taken
    return counts


def train_rows(unit: Unit, fractions: dict[str, float]) -> int:
    return unit.rows - sum(held_out_counts(unit.rows, fractions).values())


def split_codes(unit: Unit, seed: int, fractions: dict[str, float]) -> np.ndarray:
    """(rows,) int8 split code of each row of ``unit``, drawn by ``rng([seed, unit.index])``.

    A row's split depends on the seed and its place only, never on the number
    of processes or on which process reads it. Test rows are drawn first, then
    validation rows, as :func:`dlcli.data.splits.split_indices` draws them.
    """
    codes = np.zeros(unit.rows, np.int8)
    counts = held_out_counts(unit.rows, fractions)
    if not any(counts.values()):
        return codes
    order = np.random.default_rng([seed, unit.index]).permutation(unit.rows)
    start = 0
    for name in ("test", "val"):
        count = counts.get(name, 0)
        codes[order[start:start + count]] = SPLIT_CODES[name]
        start += count
    return codes


def largest_share(units: Sequence[Unit], processes: int, fractions: dict[str, float]) -> int:
    return max(sum(train_rows(u, fractions) for u in process_units(units, p, processes)) for p in range(processes))

