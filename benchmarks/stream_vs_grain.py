"""Streaming loaders on a HIGGS-shaped Parquet data set: dlcli's ParquetFeed against Google's grain.

Both deliver one epoch of shuffled, standardised float32 chunks of 8,192 x 28
(and their labels) from Parquet parts with row groups of about 100k rows, on
the same machine; each loader runs in a process of its own so that its peak
resident memory (``ru_maxrss``) is its own. On a shared machine the CPU
seconds a loader spends per million rows (all its threads) is the steadier
figure; rows/s follows what the other processes leave. The job is dlcli's: row groups
permuted per epoch, rows shuffled within windows of ``--buffer`` rows.

  dlcli  :class:`dlcli.data.stream.ParquetFeed` (fit pass timed apart, then one epoch);
  grain  ``grain.MapDataset`` over row groups (shuffled), each read with pyarrow and
         converted to float32 by a ``map``, unbatched and window-shuffled over
         ``--buffer`` rows by ``grain.experimental.WindowShuffleIterDataset``, batched
         by ``.batch(8192)``, with grain's own prefetch threads.

Run (grain from a throwaway folder; the data set is generated into /tmp once)::

    pip install --target /tmp/grainlib grain
    PYTHONPATH=.:/tmp/grainlib python benchmarks/stream_vs_grain.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 8192
FEATURES = [f"f{i}" for i in range(28)]


def generate(folder: Path, rows: int, parts: int = 10, row_group: int = 100_000) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("*.parquet"))
    if len(paths) == parts:
        return paths
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    for p in range(parts):
        n = rows // parts
        x = rng.standard_normal((n, 28), dtype=np.float32)
        columns = {"label": (rng.random(n) < 0.5).astype(np.float32)}
        columns.update({name: x[:, j] for j, name in enumerate(FEATURES)})
        pq.write_table(pa.table(columns), folder / f"part-{p:05d}.parquet", row_group_size=row_group)
    return sorted(folder.glob("*.parquet"))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_dlcli(paths: list[Path], buffer: int, limit: int, repeats: int, validation_split: float = 0.0) -> dict:
    from dlcli.data.stream import ParquetFeed

    feed = ParquetFeed(paths, features=FEATURES, target="label", seed=0, shuffle_buffer=buffer,
                       validation_split=validation_split)
    began = time.perf_counter()
    feed.fit(feed.fit_sums(), standardize=True)
    fit_s, fit_rss = time.perf_counter() - began, peak_rss_mb()
    result = _epochs("dlcli" + (f" (val {validation_split})" if validation_split else ""),
                     lambda epoch: ((c.x, c.y) for c in feed.chunks(epoch, 0, CHUNK)), repeats)
    feed.close()
    return {**result, "fit_s": round(fit_s, 2), "fit_peak_rss_mb": round(fit_rss)}


def run_dlcli_held_out(paths: list[Path], buffer: int, limit: int, repeats: int) -> dict:
    return run_dlcli(paths, buffer, limit, repeats, validation_split=0.2)


def run_grain(paths: list[Path], buffer: int, limit: int, repeats: int) -> dict:
    """grain's own pipeline: records from ParquetIterDataset, window-shuffled, batched, then standardised."""
    import grain
    import grain.experimental as ge

    mean, std = np.zeros(28, np.float32), np.ones(28, np.float32)  # the arithmetic of dlcli's standardisation

    def to_chunk(batch):
        x = np.stack([batch[name] for name in FEATURES], axis=1).astype(np.float32)
        x -= mean
        x /= std
        return x, batch["label"].astype(np.int32)

    dataset = ge.ParquetIterDataset([str(p) for p in paths])
    dataset = ge.LimitIterDataset(dataset, count=limit) if limit else dataset
    dataset = ge.WindowShuffleIterDataset(dataset, window_size=buffer, seed=0).batch(CHUNK).map(to_chunk)
    dataset = ge.ThreadPrefetchIterDataset(dataset, prefetch_buffer_size=2)
    return _epochs("grain", lambda epoch: iter(dataset), 1)


def run_grain_blocks(paths: list[Path], buffer: int, limit: int, repeats: int) -> dict:
    """grain as a thread pool over row groups (shuffled), each read whole; rows shuffled within a row group only."""
    import grain
    import grain.experimental as ge
    import pyarrow.parquet as pq

    units = [(str(p), g) for p in paths for g in range(pq.ParquetFile(p).num_row_groups)]
    mean, std = np.zeros(28, np.float32), np.ones(28, np.float32)

    def read(unit):
        table = pq.ParquetFile(unit[0]).read_row_group(unit[1], use_threads=False)
        x = np.empty((table.num_rows, 28), np.float32)
        for j, name in enumerate(FEATURES):
            x[:, j] = table.column(name).to_numpy()
        x -= mean
        x /= std
        order = np.random.default_rng(unit[1]).permutation(len(x))
        return x[order], table.column("label").to_numpy().astype(np.int32)[order]

    dataset = grain.MapDataset.source(units).shuffle(seed=0).map(read).to_iter_dataset(
        grain.ReadOptions(num_threads=2, prefetch_buffer_size=2))
    return _epochs("grain-blocks", lambda epoch: iter(ge.RebatchIterDataset(dataset, batch_size=CHUNK)), repeats)


def _epochs(loader: str, batches, repeats: int) -> dict:
    """Rows/s of ``repeats`` epochs of ``batches(epoch)``: each, and their median."""
    rates, cpu = [], []
    for epoch in range(1, repeats + 1):
        began, began_cpu, rows = time.perf_counter(), time.process_time(), 0
        for x, y in batches(epoch):
            rows += len(x)
        rates.append(rows / (time.perf_counter() - began))
        cpu.append((time.process_time() - began_cpu) / rows * 1e6)
    return {"loader": loader, "rows": rows, "median_rows_per_s": round(float(np.median(rates))),
            "epochs_rows_per_s": [round(r) for r in rates],
            "cpu_s_per_million_rows": round(float(np.median(cpu)), 3), "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--buffer", type=int, default=1 << 20)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/higgs-stream"))
    parser.add_argument("--only", choices=list(LOADERS))
    parser.add_argument("--repeats", type=int, default=3, help="epochs per loader (grain's record pipeline: 1)")
    parser.add_argument("--grain-rows", type=int, default=200_000,
                        help="rows grain's record-by-record pipeline reads (0: all); its rate is per row")
    args = parser.parse_args()
    paths = generate(args.folder, args.rows)
    if args.only:
        print(json.dumps(LOADERS[args.only](paths, args.buffer, args.grain_rows, args.repeats)))
        return
    for loader in LOADERS:
        out = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--buffer", str(args.buffer),
                              "--folder", str(args.folder), "--grain-rows", str(args.grain_rows),
                              "--repeats", str(args.repeats), "--only", loader],
                             capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr[-2000:])


LOADERS = {"dlcli": run_dlcli, "dlcli-val": run_dlcli_held_out, "grain-blocks": run_grain_blocks, "grain": run_grain}

if __name__ == "__main__":
    main()
