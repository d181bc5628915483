"""Reading TensorBoard event files back as TensorBoard does, to check what a run wrote."""

from __future__ import annotations

import struct
from pathlib import Path

from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.record_writer import masked_crc32c


def read_events(path: Path) -> list[Event]:
    """Every event of one file; a record whose checksum fails is an error, as in TensorBoard."""
    data, events, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("Q", header)
        assert struct.unpack("I", data[at + 8:at + 12])[0] == masked_crc32c(header)
        body = data[at + 12:at + 12 + length]
        assert struct.unpack("I", data[at + 12 + length:at + 16 + length])[0] == masked_crc32c(body)
        events.append(Event.FromString(body))
        at += 16 + length
    return events


def read_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """values[tag][step] of a folder's event files (not its sub-folders), in name order.

    A restart marker (SessionLog START at step s) drops the steps from s on
    that earlier files recorded, as TensorBoard's purge does; a step written
    twice without one between is an error (TensorBoard would show both).
    """
    values: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in read_events(path):
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                for steps in values.values():
                    for step in [s for s in steps if s >= event.step]:
                        del steps[step]
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    steps = values.setdefault(value.tag, {})
                    assert event.step not in steps, f"{path.name}: step {event.step} of {value.tag} written twice"
                    steps[event.step] = value.simple_value
    return values
