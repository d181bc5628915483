"""Files that a kill at any moment leaves either as they were or complete.

Every file dlcli writes whole (summary.json, recipe.toml,
preprocessing.json, figures, predictions, samples) is written to a hidden
temporary file in the same folder, flushed to disk and renamed over its
name: a rename within one folder is atomic, so a reader sees the old file
or the new one, never half of one.

``metrics.jsonl`` grows by one line per epoch and is not rewritten each
time (that would cost a long run quadratic time). Each line is flushed as
soon as it is written, in one write (a line is far smaller than the write
buffer), so a killed process leaves whole lines;
readers still go through :func:`read_jsonl`, which skips a torn last line
(a machine that loses power mid-write can leave one).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dlcli.errors import DlcliError

UMASK = os.umask(0o022)  # read once, at import: setting it is process-wide and racy later
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block succeeds.

    Args:
      path: the file to create or replace.
      overwrite: when False, an existing ``path`` is never replaced, even one
        created by someone else while the block ran (raises FileExistsError).
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _sync(temporary)
        os.chmod(temporary, 0o666 & ~UMASK)  # mkstemp makes files private; results are for everyone to read
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if path exists: never clobbers
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, data: Any, default: Callable[[Any], Any] | None = None) -> None:
    write_text(path, json.dumps(data, indent=2, default=default))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line (no newline, or not JSON) is skipped."""
    lines = Path(path).read_text().split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines) - 1:  # only the last line can be torn; damage elsewhere is not ours to hide
                raise DlcliError(f"{path}: line {number} is not JSON. The file was edited or damaged; restore it "
                                 "or remove that line.") from None
    return records


def _sync(path: Path) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a power cut cannot undo it); not every filesystem allows it."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
