"""Saving and restoring where a run stands, so ``--resume`` continues exactly.

The arrays (the engine's carry: train state, best state, early-stopping
counters, the epoch's partial sums) go to ``checkpoints/last`` (see
:mod:`dlcli.checkpoint`); the host's :class:`~dlcli.engine.driver.Progress` (the epoch and
chunk reached, the metrics history) goes to ``meta.json`` inside the same
folder, so the two are always swapped in together. Shuffling needs no
state: an epoch's order is recomputed from (seed, epoch).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from dlcli.checkpoint import load_checkpoint, load_meta, save_checkpoint
from dlcli.engine.driver import Progress
from dlcli.errors import DlcliError

FORMAT = 2


def save_resumable(folder: Path, carry: Any, progress: Progress) -> None:
    """Write ``checkpoints/last`` (one member's carry and progress) and ``checkpoints/best`` (for evaluate/predict)."""
    save_checkpoint(folder / "last", carry, {"format": FORMAT, **asdict(progress)})
    save_checkpoint(folder / "best", carry.best._replace(key=None))


def load_resumable(folder: Path, carry_like: Any) -> tuple[Any, Progress]:
    """(carry, progress) from ``checkpoints/last``, restored into ``carry_like``'s structure."""
    meta = load_meta(folder / "last")
    if meta is None or meta.get("format") != FORMAT:
        raise DlcliError(f"'{folder / 'last'}' holds no resumable checkpoint (it was not written by this version of "
                         "dlcli, or the run stopped before its first checkpoint). Start a new run instead.")
    meta.pop("format")
    return load_checkpoint(folder / "last", carry_like), Progress(**meta)
