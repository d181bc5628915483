"""Where a run stands, saved with its last checkpoint so ``--resume`` continues exactly.

The arrays (train state and best-so-far state) go to ``checkpoints/last``
through orbax; everything else that decides what happens next (the epoch
and chunk reached, the epoch's partial sums, the early-stopping counters,
the metrics history) goes to ``meta.json`` inside the same folder, so the
two are always swapped in together. Shuffling needs no state: an epoch's
order is recomputed from (seed, epoch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dlcli.checkpoint import load_checkpoint, load_meta, save_checkpoint
from dlcli.errors import DlcliError
from dlcli.train.early_stopping import EarlyStopping

FORMAT = 1


@dataclass
class Progress:
    epoch: int = 1  # the epoch in progress, from 1
    chunk: int = 0  # chunks of that epoch already run
    sums: dict[str, float] = field(default_factory=dict)  # the epoch's partial sums
    epoch_seconds: float = 0.0  # time spent in the epoch so far
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopping: dict[str, Any] = field(default_factory=dict)
    finished: bool = False  # the last epoch ran, or early stopping fired

    def snapshot(self, stopping: EarlyStopping) -> "Progress":
        """A copy with the early-stopping counters as they are now.

        Taken every epoch, so it must stay cheap: history records are never
        changed once appended, so the list is copied but not the records
        (a deep copy made 1,000-epoch runs quadratic: 3 s of 9 for 300 epochs).
        """
        return replace(self, sums=dict(self.sums), history=list(self.history), stopping=stopping.to_dict())

    def add(self, chunk_sums: dict[str, Any]) -> None:
        """Accumulate one chunk's sums (the chunk's diagnostics are not sums and are skipped)."""
        for key, value in chunk_sums.items():
            if key not in ("nonfinite_at", "last_finite_loss"):
                self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.chunk += 1

    def next_epoch(self) -> None:
        self.epoch, self.chunk, self.sums, self.epoch_seconds = self.epoch + 1, 0, {}, 0.0

    @property
    def position(self) -> str:
        return f"epoch {self.epoch}" + (f", after chunk {self.chunk}" if self.chunk else "")


def save_resumable(folder: Path, state: Any, best: Any, progress: Progress) -> None:
    """Write ``checkpoints/last`` (state, best state, progress) and ``checkpoints/best`` (for evaluate/predict).

    ``progress`` is a :meth:`Progress.snapshot`, early-stopping counters included.
    """
    meta = {"format": FORMAT, **asdict(progress)}
    save_checkpoint(folder / "last", {"state": state, "best": best}, meta)
    save_checkpoint(folder / "best", best._replace(key=None))


def load_resumable(folder: Path, state_like: Any) -> tuple[Any, Any, Progress]:
    """(state, best, progress) from ``checkpoints/last``, restored into ``state_like``'s structure."""
    meta = load_meta(folder / "last")
    if meta is None or meta.get("format") != FORMAT:
        raise DlcliError(f"'{folder / 'last'}' holds no resumable checkpoint (it was not written by this version of "
                         "dlcli, or the run stopped before its first checkpoint). Start a new run instead.")
    meta.pop("format")
    tree = load_checkpoint(folder / "last", {"state": state_like, "best": state_like})
    return tree["state"], tree["best"], Progress(**meta)
