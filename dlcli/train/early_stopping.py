"""Early stopping with stated semantics.

``patience`` counts consecutive epochs whose monitored value did not improve
on the best so far by more than ``min_delta``; training stops at the end of
the epoch where that count reaches ``patience`` (``patience = 0`` stops at
the first epoch without improvement). The best epoch's weights are always
the ones kept for evaluate and predict, and the run records which epoch it was.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class EarlyStopping:
    monitor: str
    mode: str  # "min" | "max"
    patience: int | None  # None: never stop, only track the best epoch
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0

    @staticmethod
    def resolve_mode(monitor: str, mode: str) -> str:
        if mode != "auto":
            return mode
        return "min" if monitor.endswith(("loss", "mse", "mae", "error")) else "max"

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        gain = self.best - value if self.mode == "min" else value - self.best
        return gain > self.min_delta

    def update(self, epoch: int, value: float) -> tuple[bool, bool]:
        """Record one epoch; returns (is_best, should_stop)."""
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        self.wait += 1
        return False, self.patience is not None and self.wait >= self.patience

    def to_dict(self) -> dict:
        return asdict(self)
