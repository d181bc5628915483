"""TensorBoard scalars of a run, one event per epoch, so that ``tensorboard --logdir runs`` shows it.

An epoch record (a metrics.jsonl line) becomes one event whose step is the
epoch: ``loss`` -> ``loss/train``, ``val_loss`` -> ``loss/val`` (train and
validation of a metric side by side in one section), ``learning_rate`` as
is, ``time_s`` and ``samples_per_s`` under ``speed/``. A custom-scalars
layout also draws train and validation of each metric in one chart.

Writing happens on the host after the epoch's numbers are already there, in
the calling thread: tensorboardX's record writer appends to a buffered file
(tens of microseconds an epoch, no thread or queue), which is flushed every
:data:`FLUSH_SECONDS` and on close, so a live TensorBoard follows the run.
tensorboardX is imported on first use.

Every event file starts with a *purge* at its first epoch: a resumed run
opens a new file in the same folder, and TensorBoard then drops the steps
from that epoch on that an earlier file recorded (epochs trained after the
last checkpoint), so no epoch appears twice.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

FLUSH_SECONDS = 5.0
SPEED_KEYS = ("time_s", "samples_per_s")
_files = itertools.count()  # two event files opened in the same second must not share a name


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a metrics.jsonl key."""
    if key == "learning_rate":
        return key
    if key in SPEED_KEYS:
        return f"speed/{key}"
    if key.startswith("val_"):
        return f"{key.removeprefix('val_')}/val"
    return f"{key}/train"


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's finite numbers by tag (the epoch is the step, not a scalar; lists and labels are left out)."""
    return {scalar_tag(key): float(value) for key, value in record.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


def folder_name(label: str) -> str:
    """A label such as ``leaky_relu(negative_slope=0.1)`` as one folder name (no path separator)."""
    return re.sub(r"[^\w.,=()+-]", "_", label) or "_"


class ScalarLog:
    """One event file in ``folder``, written one epoch at a time.

    Args:
      folder: where the ``events.out.tfevents.*`` file goes (created if needed).
      first_epoch: the first epoch this file will hold; steps from it on
        that earlier files in ``folder`` hold (a resumed run) are purged.
    """

    def __init__(self, folder: Path, first_epoch: int = 1):
        self.folder, self.first_epoch = folder, first_epoch
        self.path: Path | None = None
        self._writer = None  # opened at the first epoch: a run stopped before it leaves no empty file
        self._layout_written = False
        self._flushed = time.monotonic()

    def _open(self) -> None:
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.record_writer import RecordWriter

        self.folder.mkdir(parents=True, exist_ok=True)
        # TensorBoard reads a folder's files in name order: the time, then a counter that sorts as a number.
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_files):06d}"
        self.path = self.folder / name
        self._writer = RecordWriter(str(self.path))
        self._write(Event(wall_time=time.time(), step=self.first_epoch, file_version="brain.Event:2"))
        # A restart marker: TensorBoard forgets earlier files' steps from first_epoch on (none in a new run).
        self._write(Event(wall_time=time.time(), step=self.first_epoch,
                          session_log=SessionLog(status=SessionLog.START)))

    def write(self, record: dict[str, Any]) -> None:
        """Add one epoch record (a metrics.jsonl line) at step ``record["epoch"]``."""
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        if self._writer is None:
            self._open()
        values = scalars(record)
        if not self._layout_written:
            self._write_layout(values)
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
        self._write(Event(wall_time=time.time(), step=int(record["epoch"]), summary=summary))
        if time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.flush()

    def _write_layout(self, values: dict[str, float]) -> None:
        """Charts of train and validation together, for the metrics that have both (TensorBoard's Custom Scalars)."""
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import custom_scalars

        pairs = {tag.split("/")[0] for tag in values if tag.endswith("/val") and tag.replace("/val", "/train") in values}
        charts = {name: ["Multiline", [f"{name}/train", f"{name}/val"]] for name in sorted(pairs)}
        if charts:
            self._write(Event(wall_time=time.time(), summary=custom_scalars({"train and validation": charts})))
        self._layout_written = True

    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        if self._writer is not None:
            self.flush()
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "ScalarLog":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ScalarLogs:
    """One :class:`ScalarLog` per member of a comparison, each in its own sub-folder of ``folder``.

    TensorBoard lists every sub-folder as a run, so the members' curves
    overlay in one chart per metric. A member's log opens at its first record.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._logs: dict[str, ScalarLog] = {}

    def write(self, member: str, record: dict[str, Any]) -> None:
        """Add ``record`` to the log of ``member``, a relative folder such as ``"relu/seed_0"``."""
        if member not in self._logs:
            parts = [folder_name(part) for part in member.split("/")]
            self._logs[member] = ScalarLog(self.folder.joinpath(*parts))
        self._logs[member].write(record)

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def __enter__(self) -> "ScalarLogs":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
