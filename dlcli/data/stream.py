"""A :class:`~dlcli.data.feed.Feed` over a Parquet data set larger than memory, streamed from disk.

The data set is cut into its row groups (:mod:`dlcli.data.row_groups`); a
process owns every P-th of them and reads only those. Each epoch:

1. the process's row groups are permuted with ``rng([seed, epoch, process])``;
2. consecutive row groups of that order form *windows* of at least
   ``shuffle_buffer`` training rows (the last one takes what is left);
3. the rows of window ``w`` are permuted with ``rng([seed, epoch, process, w + 1])``.

Chunk ``c`` is rows ``[c * rows, (c + 1) * rows)`` of that order, padded past
the share's end with rows of the last window at weight 0. Window sizes follow
from the footers and the seed, so :meth:`ParquetFeed.chunks` starts at any
chunk by reading the window that holds it, and nothing before: a resumed run
continues exactly where it stopped, at the cost of one window.

A thread (:class:`dlcli.data.prefetch.Background`) builds the next window,
already permuted and standardised, while the current one is consumed: about
two windows and a chunk of memory, whatever the data set's size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from dlcli.data.columns import check_complete, encoded_targets, features_into, target_values
from dlcli.data.aligned import zeros_aligned
from dlcli.data.feed import STREAM_CHUNK_ROWS, Chunk, chunks_per_epoch
from dlcli.data.fit_pass import FitSums, combine_fit_sums, fitted_preprocessing
from dlcli.data.prefetch import Background
from dlcli.data.spill import SpilledRows
from dlcli.data.preprocess import Preprocessing
from dlcli.data.row_groups import (SPLIT_CODES, TRAIN, Parts, Unit, held_out_counts, largest_share, process_units,
                                   split_codes, train_rows)
from dlcli.errors import DlcliError
from dlcli.heap import release_freed_memory
from dlcli.tasks import task_named

__all__ = ["ParquetFeed"]

WINDOWS_ALIVE = 2  # the window being consumed and the one being read: double buffering
READERS, READ_AHEAD = 2, 3  # row groups read at once (one thread each), and read before they are needed


class Window(NamedTuple):
    x: np.ndarray  # (rows, F) float32 in reading order, standardised
    y: np.ndarray  # (rows,) encoded targets
    order: np.ndarray  # (rows,) the window's shuffle: row ``order[i]`` comes i-th


class EpochPlan(NamedTuple):
    windows: list[list[int]]  # per window, indices into the process's units, in reading order
    starts: np.ndarray  # (W + 1,) the first row of each window in the epoch order, and the share's size


class HeldOut:
    """Rows of a process's splits, gathered unit by unit into float32 inputs sized from the footers: in
    memory, or (``spill``) in a temporary file."""

    def __init__(self, units: Sequence[Unit], fractions: dict[str, float], width: int,
                 splits: Sequence[str] | None = None, spill: bool = False):
        splits = list(fractions) if splits is None else list(splits)
        sizes = {split: sum(train_rows(u, fractions) if split == "train" else
                            held_out_counts(u.rows, fractions).get(split, 0) for u in units) for split in splits}
        # On disk (spill), or page-aligned, so that JAX on a CPU uses them in place rather than copying them
        self.x: dict[str, np.ndarray | SpilledRows] = {
            split: SpilledRows(size, width) if spill else zeros_aligned((size, width)) for split, size in sizes.items()}
        self.targets: dict[str, list[np.ndarray]] = {split: [] for split in splits}
        self.filled = dict.fromkeys(splits, 0)

    def add(self, split: str, table: pa.Table, raw: Preprocessing, target: str, rows: np.ndarray, where: str) -> None:
        at, x = self.filled[split], self.x[split]
        if isinstance(x, SpilledRows):
            part = np.empty((len(rows), x.shape[1]), np.float32)
            features_into(part, table, raw, rows, where)  # offsets and scales, checked
            x.write(at, part)
        else:
            features_into(x[at:at + len(rows)], table, raw, rows, where)
        self.targets[split].append(target_values(table, target, rows))
        self.filled[split] = at + len(rows)

    def model_ready(self, pre: Preprocessing) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Standardised in place (features_into's arithmetic) and the targets encoded."""
        out = {}
        for split, x in self.x.items():
            if not len(x):
                continue
            if pre.mean is not None and isinstance(x, SpilledRows):
                x.standardize(pre.mean, pre.std)
            elif pre.mean is not None:
                x -= np.asarray(pre.mean, np.float32)
                x /= np.asarray(pre.std, np.float32)
            out[split] = (x, self._encoded(pre, split))
        return out

    def _encoded(self, pre: Preprocessing, split: str) -> np.ndarray:
        """The split's targets encoded unit by unit into one array, each raw unit let go once encoded: at no
        time the raw targets whole and their encoding (a concatenation of millions held both, 80 MB more)."""
        pieces, self.targets[split] = self.targets[split], []
        pieces.reverse()  # popped from the end, in reading order
        out, at = None, 0
        while pieces:
            codes = encoded_targets(pre, pieces.pop(), f"{split} split")
            out = np.empty(self.filled[split], codes.dtype) if out is None else out
            out[at:at + len(codes)] = codes
            at += len(codes)
        return out


class ParquetFeed:
    """This process's training rows of a Parquet data set, streamed; its held-out rows, read on demand.

    Args:
      source: the data set (a ``pyarrow.dataset.Dataset`` of Parquet files) or its part files.
      features: the input columns, in the model's order.
      target: the column to predict.
      seed: the recipe seed: it fixes the splits and every epoch's order.
      validation_split, test_split: the fractions of each row group held out.
      shuffle_buffer: the fewest training rows shuffled together (``data.shuffle_buffer``).
      process, processes: this process's index and the number of processes.
      offsets, scales: ``data.offsets`` and ``data.scales``, applied before standardisation.
      preprocessing: a fitted preprocessing (a resumed run's); otherwise call :meth:`fit`.
      missing: ``data.missing``; only "error" streams (dropping or filling rows would need the data in memory).
      spill_held_out: keep the held-out rows in a temporary file (:mod:`dlcli.data.spill`), not in memory.
    """

    def __init__(self, source: ds.Dataset | Sequence[str | Path], *, features: Sequence[str], target: str, seed: int,
                 validation_split: float = 0.0, test_split: float = 0.0, shuffle_buffer: int = 1 << 20,
                 process: int = 0, processes: int = 1, offsets: dict[str, float] | None = None,
                 scales: dict[str, float] | None = None, preprocessing: Preprocessing | None = None,
                 missing: str = "error", spill_held_out: bool = False):
        if missing != "error":
            raise DlcliError(f"data.missing = \"{missing}\" is not available when streaming: rows are read part by "
                             "part and every row group's split and size are fixed before any is read. Clean the data "
                             "set of missing and NaN values, or set data.stream = false to load it in memory, where "
                             "data.missing applies.")
        self.parts = Parts(source)
        self.parts.require_columns([*features, target])
        self.target, self.seed, self.process, self.shuffle_buffer = target, seed, process, shuffle_buffer
        self.spill_held_out = spill_held_out
        self.fractions = {name: f for name, f in (("test", test_split), ("val", validation_split)) if f}
        self.units = process_units(self.parts.units, process, processes)
        self.train_counts = np.array([train_rows(u, self.fractions) for u in self.units], np.int64)
        self.local_examples = int(self.train_counts.sum())
        self.examples = sum(train_rows(u, self.fractions) for u in self.parts.units)
        self.largest_share = largest_share(self.parts.units, processes, self.fractions)
        shares = [sum(train_rows(u, self.fractions) for u in process_units(self.parts.units, p, processes))
                  for p in range(processes)]
        if not min(shares):  # checked by every process alike, so that all of them stop, not just the empty one
            empty = shares.index(0)
            raise DlcliError(f"data: process {empty} of {processes} would have no training rows: the data set has "
                             f"{len(self.parts.units)} row group(s) in {len(self.parts.footers)} part(s), and each "
                             "process reads whole row groups. Write the data with more, smaller row groups (pyarrow's "
                             "row_group_size, Spark's parquet.block.size), or run fewer processes.")
        self.raw = Preprocessing(kind="table", task="regression", input_shape=[len(features)], target=target,
                                 input_columns=list(features), feature_names=list(features),
                                 offsets=dict(offsets or {}), scales=dict(scales or {}))
        self.preprocessing = preprocessing
        self.description = (f"{self.examples:,} training rows streamed from {len(self.parts.footers)} Parquet part(s) "
                            f"({len(self.parts.units)} row groups); each epoch permutes row groups and shuffles rows "
                            f"within windows of at least {shuffle_buffer:,} rows, read ahead on a thread")
        self.chunk_rows = STREAM_CHUNK_ROWS
        self._readers: set[Background] = set()
        self._held_out: HeldOut | None = None  # the held-out rows, kept by the fit pass

    # -- the fit pass ----------------------------------------------------
    def fit_sums(self) -> FitSums:
        """One pass over this process's training rows: their :class:`FitSums`, and every value checked.

        The held-out rows it meets are kept as they go, as float32 inputs not yet
        standardised (the statistics come at the end of the pass) and raw targets,
        in arrays sized from the footers: a fraction of the float64 table they come from.
        """
        total = FitSums.empty(len(self.raw.input_columns))
        held_out = HeldOut(self.units, self.fractions, len(self.raw.input_columns), spill=self.spill_held_out)
        reader = Background((unit, self._read(unit)) for unit in self.units)  # the next read overlaps this sum
        try:
            for unit, table in reader:
                total = combine_fit_sums([total, self._unit_sums(unit, table)])
                self._keep_rows(unit, table, held_out)
        finally:
            reader.close()
        self._held_out = held_out
        release_freed_memory()
        return total

    def _unit_sums(self, unit: Unit, table: pa.Table) -> FitSums:
        where = self._where(unit)
        check_complete(table, [*self.raw.input_columns, self.target], where)
        rows = np.flatnonzero(split_codes(unit, self.seed, self.fractions) == TRAIN)
        x = np.empty((len(rows), len(self.raw.input_columns)), np.float32)
        features_into(x, table, self.raw, rows, where)
        targets = target_values(table, self.target, rows)
        if targets.dtype.kind == "f" and not np.isfinite(targets).all():
            raise DlcliError(f"{where}: target column '{self.target}' has {int((~np.isfinite(targets)).sum())} "
                             "NaN or infinite value(s) among its training rows. Clean that part.")
        return FitSums.of_rows(x, targets)

    def fit(self, sums: FitSums, *, standardize: bool, label_map: dict[str, int] | None = None,
            task: str | None = None) -> Preprocessing:
        """The preprocessing fitted on ``sums`` (all processes' combined), which this feed then applies."""
        self.preprocessing = fitted_preprocessing(sums, self.raw, standardize=standardize, label_map=label_map,
                                                  task=task)
        return self.preprocessing

    # -- held-out rows ---------------------------------------------------
    def split_tables(self, *splits: str) -> dict[str, pa.Table]:
        """The raw rows of each of ``splits`` ("train", "val", "test") in this process's share, in row-group order."""
        pieces: dict[str, list[pa.Table]] = {split: [] for split in splits}
        for unit in self.units:
            table = self._read(unit)
            check_complete(table, [*self.raw.input_columns, self.target], self._where(unit))
            codes = split_codes(unit, self.seed, self.fractions)
            for split, tables in pieces.items():
                tables.append(table.take(pa.array(np.flatnonzero(codes == SPLIT_CODES[split]))))
        return {split: pa.concat_tables(tables) for split, tables in pieces.items()}

    def _keep_rows(self, unit: Unit, table: pa.Table, held_out: "HeldOut") -> None:
        codes = split_codes(unit, self.seed, self.fractions)
        for split in held_out.x:
            rows = np.flatnonzero(codes == SPLIT_CODES[split])
            held_out.add(split, table, self.raw, self.target, rows, self._where(unit))

    def training_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """This process's training rows as model-ready (x, y) arrays, read unit by unit (its share held in
        memory, in a run of several processes whose shares fit)."""
        rows = HeldOut(self.units, self.fractions, len(self.raw.input_columns), ["train"])
        for unit in self.units:
            self._keep_rows(unit, self._read(unit), rows)
            release_freed_memory()  # each table's pages as it goes: they came on top of the whole share
        ready = rows.model_ready(self._fitted())["train"]
        release_freed_memory()  # the tables read, and the targets' encoding (tens of MB on a share of millions)
        return ready

    def held_out(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """This process's validation and test rows as model-ready (x, y): x in memory, or in a file
        (:class:`~dlcli.data.spill.SpilledRows`) when the feed spills its held-out rows.

        The fit pass keeps them as it goes, so that a run reads its data once
        before the first epoch; without one (a resumed run) they are read here.
        """
        pre = self._fitted()
        held_out, self._held_out = self._held_out, None
        if held_out is None:
            held_out = HeldOut(self.units, self.fractions, len(self.raw.input_columns), spill=self.spill_held_out)
            for unit in self.units:
                table = self._read(unit)
                check_complete(table, [*self.raw.input_columns, self.target], self._where(unit))
                self._keep_rows(unit, table, held_out)
        ready = held_out.model_ready(pre)
        release_freed_memory()
        return ready

    # -- epochs ----------------------------------------------------------
    def plan(self, epoch: int) -> EpochPlan:
        """Epoch ``epoch``'s windows: a function of (seed, epoch, process) and the footers, nothing read."""
        order = np.random.default_rng([self.seed, epoch, self.process]).permutation(len(self.units))
        windows, current, size = [], [], 0
        for i in order:
            if self.train_counts[i]:
                current.append(int(i))
                size += int(self.train_counts[i])
            if size >= self.shuffle_buffer:
                windows.append(current)
                current, size = [], 0
        windows += [current] if current else []
        sizes = [int(self.train_counts[w].sum()) for w in windows]
        return EpochPlan(windows, np.concatenate([[0], np.cumsum(sizes)]))

    def chunks(self, epoch: int, start: int, rows: int) -> Iterator[Chunk]:
        """Chunks ``start, start + 1, ...`` of ``epoch``; reading starts at the window that holds chunk ``start``."""
        plan, n = self.plan(epoch), self.local_examples
        first = int(np.searchsorted(plan.starts, min(start * rows, n - 1), side="right")) - 1
        reader = Background(self._windows(epoch, plan, first), alive=WINDOWS_ALIVE)
        self._readers.add(reader)
        try:
            w, window = first, next(reader)
            for c in range(start, chunks_per_epoch(self, rows)):
                # Not page-aligned (placed with a copy): fresh pages for every 30 MB chunk cost 26 ms against
                # 15 ms for the heap's reused ones and the copy, about 4% of a streamed epoch
                x = np.empty((rows, window.x.shape[1]), np.float32)
                y = np.empty(rows, window.y.dtype)
                done = 0
                while done < rows:
                    at = c * rows + done
                    if at >= n:  # padding: rows of the last window, cyclically, at weight 0
                        take = window.order[(np.arange(at, (c + 1) * rows) - n) % len(window.order)]
                    else:
                        if at >= plan.starts[w + 1]:
                            window = None  # its slot (and buffer) go to the window after next
                            w, window = w + 1, next(reader)
                        begin = at - int(plan.starts[w])
                        take = window.order[begin:begin + min(rows - done, int(plan.starts[w + 1]) - at)]
                    # copies, so that no chunk shares memory with a window buffer the thread will refill
                    np.take(window.x, take, axis=0, out=x[done:done + len(take)], mode="clip")
                    np.take(window.y, take, out=y[done:done + len(take)], mode="clip")
                    done += len(take)
                yield Chunk(x, y, (np.arange(c * rows, (c + 1) * rows) < n).astype(np.float32))
        finally:
            reader.close()
            self._readers.discard(reader)

    def _windows(self, epoch: int, plan: EpochPlan, first: int) -> Generator[Window, None, None]:
        """Windows ``first, first + 1, ...`` of ``plan``, each filled in reading order into one of two buffers.

        The buffers are reused (fresh memory for every window cost page faults
        worth a fifth of the epoch); :class:`Background` lets this generator
        fill one only after the consumer has moved past the window it held.
        """
        pre = self._fitted()
        sizes = np.diff(plan.starts)
        width, classifies = len(pre.input_columns), task_named(pre.task).classifies
        buffers = [Window(np.empty((int(sizes.max()), width), np.float32),
                          np.empty(int(sizes.max()), np.int32 if classifies else np.float32), np.empty(0))
                   for _ in range(WINDOWS_ALIVE)]
        units = [self.units[i] for w in range(first, len(plan.windows)) for i in plan.windows[w]]
        pool, upcoming = ThreadPoolExecutor(READERS, thread_name_prefix="dlcli-read"), iter(units)
        reads = deque(pool.submit(self._read, unit) for unit in islice(upcoming, READ_AHEAD))
        try:
            for w in range(first, len(plan.windows)):
                x, y, _ = buffers[(w - first) % WINDOWS_ALIVE]
                at = 0
                for i in plan.windows[w]:
                    unit, count, table = self.units[i], int(self.train_counts[i]), reads.popleft().result()
                    reads.extend(pool.submit(self._read, unit) for unit in islice(upcoming, 1))
                    rows = self._train_rows(unit)
                    features_into(x[at:at + count], table, pre, rows, self._where(unit), check=False)
                    y[at:at + count] = encoded_targets(pre, target_values(table, self.target, rows), self._where(unit))
                    at += count
                order = np.random.default_rng([self.seed, epoch, self.process, w + 1]).permutation(int(sizes[w]))
                yield Window(x[:at], y[:at], order)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # waits for at most READERS row groups

    def _train_rows(self, unit: Unit) -> np.ndarray | slice:
        if not self.fractions:
            return slice(None)
        return np.flatnonzero(split_codes(unit, self.seed, self.fractions) == TRAIN)

    def release(self) -> None:
        self.close()  # the windows are the readers': nothing else holds training rows

    def close(self) -> None:
        for reader in list(self._readers):
            reader.close()
        self._readers.clear()

    # -- reading ---------------------------------------------------------
    def _read(self, unit: Unit) -> pa.Table:
        return self.parts.read(unit, [*self.raw.input_columns, self.target])

    def _where(self, unit: Unit) -> str:
        return f"data part '{unit.path}' (row group {unit.row_group})"

    def _fitted(self) -> Preprocessing:
        if self.preprocessing is None:
            raise RuntimeError("ParquetFeed.fit (or a fitted preprocessing) must come before reading model inputs")
        return self.preprocessing

