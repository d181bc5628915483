"""HIGGS at scale: 1M, 10M and 30M events in Spark's layout, trained in memory, streamed, or by 2 processes.

Each size is a folder as Spark writes it (``part-NNNNN-<uuid>-c000.snappy.parquet``
files of several row groups each, ``_SUCCESS``, hidden ``.crc`` checksums),
generated once into ``--dir`` and reused by later runs: HIGGS-shaped events
(label, then 21 low-level and 7 high-level features named as the course's
HIGGS columns, with a learnable signal; see ``higgs_vs_keras.generate_events``).
Every (size, path) trains ``dlcli train higgs-mlp`` as separate processes:

  memory       ``--set data.stream=false``: the data read into memory once;
  stream       ``--set data.stream=true``: rows streamed from the parts;
  2 processes  two local processes (``DLCLI_COORDINATOR``, ``DLCLI_NUM_PROCESSES``,
               ``DLCLI_PROCESS_ID``), each reading its share.

One table row per size and path: seconds from the process start to the end
of the first training call (summary.json's ``first_step_s`` where the run
records it), seconds per epoch, rows per second, peak resident memory of each
process (the largest, for 2 processes) and validation accuracy. A path that
fails shows ``failed: <its last line>`` and the others still run. ::

    python benchmarks/scale.py --dir /data/higgs-scale                    # 1M, 10M, 30M; every path
    python benchmarks/scale.py --dir /tmp/scale --sizes 1M --paths memory --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
PATHS = {"memory": "memory", "stream": "stream", "processes": "2 processes"}
PART_ROWS = 1_000_000  # events per part file at most (Spark's parts hold about 128 MB); 10 parts at least
ROW_GROUPS = 4  # row groups per part, as Spark writes several


def rows_of(text: str) -> int:
    """``20000``, ``1M`` or ``1.5M`` as a number of rows."""
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1].upper(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def spark_folder(root: Path, rows: int, seed: int = 1337) -> Path:
    """The folder of ``rows`` HIGGS-shaped events in Spark's layout, written unless a complete one exists."""
    folder = root / f"higgs-{rows}"
    if (folder / "_SUCCESS").is_file():
        return folder
    sys.path.insert(0, str(HERE))
    import pyarrow.parquet as pq
    from higgs_vs_keras import generate_events

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    job = uuid.uuid4()
    part_rows = min(PART_ROWS, -(-rows // 10))
    for part, start in enumerate(range(0, rows, part_rows)):
        name = f"part-{part:05d}-{job}-c000.snappy.parquet"
        pq.write_table(generate_events(min(part_rows, rows - start), seed + part), folder / name,
                       row_group_size=-(-part_rows // ROW_GROUPS), compression="snappy")
        (folder / f".{name}.crc").write_bytes(b"crc")  # Hadoop's checksum files: hidden, never read
    (folder / "_SUCCESS").write_bytes(b"")  # last, so that an interrupted write is redone
    return folder


@dataclass
class Row:
    rows: int
    path: str
    first_step_s: float | None = None
    epoch_s: float | None = None
    rows_per_s: float | None = None
    peak_rss_gb: float | None = None
    accuracy: float | None = None
    failure: str | None = None

    def line(self) -> str:
        def shown(value: float | None, digits: int) -> str:
            return "-" if value is None else f"{value:,.{digits}f}"

        if self.failure:
            return f"| {self.rows:>11,} | {self.path:11} | failed: {self.failure} |"
        return (f"| {self.rows:>11,} | {self.path:11} | {shown(self.first_step_s, 1):>13} | {shown(self.epoch_s, 2):>7} "
                f"| {shown(self.rows_per_s, 0):>11} | {shown(self.peak_rss_gb, 2):>12} | {shown(self.accuracy, 4):>8} |")


HEADER = ("| rows        | path        | first step s  | s/epoch | rows/s      | peak RSS GB  | accuracy |\n"
          "|-------------|-------------|---------------|---------|-------------|--------------|----------|")


def train_processes(folder: Path, path: str, out: Path, epochs: int, logs: Path, overrides: list[str]
                    ) -> tuple[list[int], list[float], str]:
    """Run the training processes of one path; (exit codes, peak RSS in GB each, a failed one's last line)."""
    command = [PYTHON, "-m", "dlcli", "train", "higgs-mlp", "--out", str(out), "--set", f"data.path='{folder}'",
               "--set", f"train.epochs={epochs}", *(arg for item in overrides for arg in ("--set", item))]
    if path in ("memory", "stream"):
        command += ["--set", f"data.stream={'true' if path == 'stream' else 'false'}"]
        environments = [{}]
    else:
        port = free_port()
        environments = [{"DLCLI_COORDINATOR": f"127.0.0.1:{port}", "DLCLI_NUM_PROCESSES": "2",
                         "DLCLI_PROCESS_ID": str(i)} for i in range(2)]
    children = []
    for i, extra in enumerate(environments):
        log = open(logs / f"{path}-{i}.log", "w")
        children.append((subprocess.Popen(command, env={**os.environ, **extra}, stdout=log, stderr=subprocess.STDOUT),
                         log))
    codes, peaks = [], []
    for child, log in children:
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children
        child.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        codes.append(child.returncode)
        peaks.append(usage.ru_maxrss / 1e6)  # kilobytes on Linux
    failed = next((i for i, code in enumerate(codes) if code != 0), None)
    if failed is None:
        return codes, peaks, ""
    own = [line for line in (logs / f"{path}-{failed}.log").read_text().splitlines() if line.strip()]
    return codes, peaks, own[-1] if own else f"exit code {codes[failed]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(folder: Path, rows: int, path: str, epochs: int, work: Path, overrides: list[str]) -> Row:
    out, logs = work / f"runs-{rows}-{path}", work / f"logs-{rows}-{path}"
    logs.mkdir(parents=True)
    codes, peaks, last = train_processes(folder, path, out, epochs, logs, overrides)
    row = Row(rows, PATHS[path], peak_rss_gb=max(peaks))
    if any(codes):
        row.failure = last
        return row
    summaries = sorted(out.glob("higgs-mlp/*/summary.json"))
    if not summaries:
        row.failure = f"no summary.json under {out}"
        return row
    summary = json.loads(summaries[-1].read_text())
    row.first_step_s = summary.get("first_step_s")
    row.epoch_s = summary["train_time_s"] / max(summary["epochs_run"], 1)
    row.rows_per_s = summary["samples_per_s"]
    row.accuracy = summary["final"].get("accuracy")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="where the Spark-style folders are (or go)")
    parser.add_argument("--sizes", default="1M,10M,30M", help="comma-separated event counts: 20000, 1M, 10M, ...")
    parser.add_argument("--paths", default="memory,stream,processes",
                        help=f"comma-separated, of {', '.join(PATHS)} ('processes' = 2 local processes)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for every run, e.g. --set train.batch_size=2048")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    paths = args.paths.split(",")
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        parser.error(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    rows_list = []
    print(HEADER, flush=True)
    for rows in map(rows_of, args.sizes.split(",")):
        tick = time.perf_counter()
        folder = spark_folder(args.dir, rows)
        print(f"(data: {folder}, {time.perf_counter() - tick:.1f} s)", file=sys.stderr)
        for path in paths:
            row = measure(folder, rows, path, args.epochs, work, args.overrides)
            rows_list.append(row)
            print(row.line(), flush=True)
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows_list], indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
