"""Early stopping with stated semantics.

``patience`` counts consecutive epochs whose monitored value did not improve
on the best so far by more than ``min_delta``; training stops at the end of
the epoch where that count reaches ``patience`` (``patience = 0`` stops at
the first epoch without improvement). The best epoch's weights are always
the ones kept for evaluate and predict, and the run records which epoch it was.
This class holds the rule; :func:`dlcli.engine.stopping.update_stop_state`
applies it inside the compiled epoch.
"""

from __future__ import annotations

from dataclasses import dataclass


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
