"""Large data sets: whether the training rows are held in memory or streamed, and each process's share.

A Parquet data set that fits the memory budget is read whole into one
float32 matrix and trained from the devices (:func:`dlcli.data.load_data`).
One that does not is streamed (:class:`dlcli.data.stream.ParquetFeed`):
preprocessing is fitted in a first pass, the held-out rows are kept on disk
(:mod:`dlcli.data.spill`), and the training rows are read again every epoch,
a window at a time.

In a run of several processes every process reads only its own row groups,
streamed or held in memory as its share (:class:`dlcli.data.feed.ArrayFeed`);
the fit pass's sums are combined across processes, so that every process
fits the same preprocessing. Each process keeps only its own held-out rows:
validation runs on the global array they form (:mod:`dlcli.engine.validation`),
and only the targets (one number a row) are gathered.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, replace

import numpy as np

from dlcli.data.dataset import DataFiles
from dlcli.data.feed import ArrayFeed
from dlcli.data.splits import Prepared, ProcessShare
from dlcli.data.tables import numeric_type
from dlcli.errors import DlcliError
from dlcli.recipe import DataConfig

GB = 1 << 30


@dataclass(frozen=True)
class Reading:
    """How a run holds its data, as the console prints it and summary.json records it."""

    stream: bool
    data_gb: float  # the whole data set as float32 (features and target)
    budget_gb: float
    processes: int
    why: str
    local_rows: int | None = None  # the training rows this process read (its share), when fed


    def line(self) -> str:
        how = "streamed from disk" if self.stream else "held in memory"
        share = f", each of {self.processes} processes reading its share" if self.processes > 1 else ""
        return f"data: {self.data_gb:.2f} GB as float32, {how}{share} ({self.why})"

    def record(self) -> dict:
        return asdict(self)


def memory_budget_gb(config: DataConfig) -> tuple[float, str]:
    """``data.memory_gb``, or half of this machine's memory."""
    if config.memory_gb is not None:
        return config.memory_gb, f"data.memory_gb = {config.memory_gb:g}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (OSError, ValueError, AttributeError):
        total = 8.0
    return total / 2, f"half of this machine's {total:.0f} GB; data.memory_gb sets it"


def process_count() -> int:
    """The processes of this run: jax's count, or one before jax is imported (no multi-process job is joined
    without it), so that a run's data can be read while jax loads (:mod:`dlcli.read_ahead`)."""
    jax = sys.modules.get("jax")
    return jax.process_count() if hasattr(jax, "process_count") else 1  # (absent while jax is half imported)


def plan_reading(config: DataConfig, rows: int, columns: int) -> Reading:
    """Stream when ``data.stream`` says so, or ("auto") when a process's share would not fit the budget."""
    processes = process_count()
    budget, source = memory_budget_gb(config)
    data_gb = rows * columns * 4 / GB
    if config.stream == "auto":
        stream = data_gb / processes > budget
        why = f"data.stream = \"auto\", budget {budget:.1f} GB: {source}"
    else:
        stream = bool(config.stream)
        why = f"data.stream = {str(stream).lower()}"
    return Reading(stream, data_gb, budget, processes, why)


def fed_data(config: DataConfig, seed: int, files: DataFiles, features: list[str], target: str,
             task: str | None, reading: Reading) -> Prepared:
    """The data of a Parquet data set as a :class:`~dlcli.data.feed.Feed` and held-out arrays: streamed, or
    this process's share in memory (``features`` and ``target`` as the files name them)."""
    import jax

    from dlcli.data.fit_pass import FitSums, combine_fit_sums
    from dlcli.data.stream import ParquetFeed
    from dlcli.train.sharding import gather_texts

    processes, process = jax.process_count(), jax.process_index()
    for key in ("val_path", "test_path", "limit"):  # one_hot, label_map, missing: the in-memory reader kept them
        if getattr(config, key):
            raise DlcliError(f"data.{key} is not available when the data set is {'streamed' if reading.stream else 'shared among processes'} "
                             f"({reading.why}): every process reads whole row groups of data.path, split by the seed. "
                             f"Remove data.{key}{', or set data.stream = false' if reading.stream else ''}.")
    own = [name for name in files.dataset.schema.names if name not in files.partitions]
    if config.column_names and list(config.column_names) != own:
        raise DlcliError(f"data.column_names renames the columns of data.path, which a streamed or shared data set "
                         f"reads by their own names ({', '.join(files.dataset.schema.names[:4])}, ...). Remove "
                         "data.column_names and name data.target and data.features as the files do, or set "
                         "data.stream = false.")
    # One streaming process keeps its held-out rows on disk; several keep each its own share in memory.
    feed = ParquetFeed(files.dataset, features=features, target=target, seed=seed,
                       validation_split=config.validation_split, test_split=config.test_split,
                       shuffle_buffer=config.shuffle_buffer, process=process, processes=processes,
                       offsets=dict(config.offsets), scales=dict(config.scales), missing=config.missing,
                       spill_held_out=reading.stream and processes == 1)
    sums = combine_fit_sums([FitSums.decode(text) for text in gather_texts(feed.fit_sums().encode())])
    pre = feed.fit(sums, standardize=config.standardize, label_map=config.label_map, task=task)
    splits = {name: held_split(x, y) for name, (x, y) in feed.held_out().items()}
    if not splits:
        raise DlcliError(f"data: a {'streamed' if reading.stream else 'shared'} data set is judged on held-out rows, "
                         "and data.validation_split and data.test_split are both 0. Set data.validation_split "
                         "(e.g. 0.1).")
    if not reading.stream:  # this process's share, held in memory, read once the training program is compiled
        feed = ArrayFeed.read_later(feed.training_arrays, feed.local_examples, seed, largest_share=feed.largest_share,
                                    examples=feed.examples, process=process, processes=processes)
    return Prepared(splits, pre, feed=feed, reading=replace(reading, local_rows=feed.local_examples))


def held_split(x, y: np.ndarray) -> tuple:
    """A held-out split of a fed run: the rows as they are in one process; in several, this process's share
    of the inputs (placed once, never gathered) and every process's targets (one number a row)."""
    import jax

    from dlcli.train.sharding import gather_rows

    if jax.process_count() == 1:
        return x, y
    targets = gather_rows(y)
    return ProcessShare(x, len(targets)), targets


def refuse_stream(config: DataConfig, files: DataFiles | None) -> None:
    """``data.stream = true`` on data that is read in memory: say why, rather than ignore the setting."""
    if files is None:
        why = f"data.source = '{config.source}' is a bundled data set, read in memory"
    elif files.format != "parquet":
        why = (f"data.path is {files.format.upper()}; streaming reads Parquet row groups (convert it with pyarrow or "
               "Spark: df.write.parquet(...))")
    else:
        keys = [f"data.{key}" for key in ("one_hot", "label_map") if getattr(config, key)]
        keys += [f'data.missing = "{config.missing}"'] if config.missing != "error" else []
        schema = files.dataset.schema
        used = [*config.features, config.target] if config.features else schema.names
        text = [f.name for f in schema if f.name in used and not numeric_type(f.type)]
        if not keys and not text:
            return  # the general path names what is wrong (a missing target, column names that do not fit)
        why = (f"{', '.join(keys)} need{'s' if len(keys) == 1 else ''} the whole table in memory" if keys else
               f"column(s) {', '.join(map(repr, text))} do not hold numbers")
    raise DlcliError(f"data.stream = true, but this data cannot be streamed: {why}. Set data.stream = \"auto\" "
                     "(or false) to read it in memory.")
