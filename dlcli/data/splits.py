"""Splitting a data set: seeded held-out fractions, and the model-ready splits that result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlcli.data.feed import Feed
from dlcli.data.preprocess import Preprocessing
from dlcli.data.spill import SpilledRows
from dlcli.errors import DlcliError
from dlcli.recipe import DataConfig

Arrays = tuple[np.ndarray, np.ndarray]


class ProcessShare:
    """This process's rows of a held-out split whose rows are spread over processes: each process keeps only
    its own, placed once as its part of the split (:func:`dlcli.engine.validation.shard_held_out`)."""

    def __init__(self, x: np.ndarray, total: int):
        self._x: np.ndarray | None = x
        self.total = total  # the split's rows over every process
        self.shape = (total, *x.shape[1:])

    def __len__(self) -> int:
        return self.total

    def release(self) -> np.ndarray:
        """The rows, handed over once (to be placed), and no longer held here."""
        if self._x is None:
            raise RuntimeError("a process's held-out share is placed once")
        x, self._x = self._x, None
        return x


@dataclass
class Prepared:
    """Model-ready splits and the preprocessing that made them."""

    splits: dict[str, Arrays]  # "train" and, when present, "val" and "test"
    preprocessing: Preprocessing
    labels: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # per split, when x is also y
    # The training rows when they are fed chunk by chunk (streamed, or this process's share), not in splits.
    feed: Feed | None = None
    reading: Any = None  # dlcli.data.large.Reading: how a Parquet data set is held (memory, stream, shares)

    @property
    def train_examples(self) -> int:
        """Training examples per epoch (over every process)."""
        return self.feed.examples if self.feed is not None else len(self.splits["train"][0])

    @property
    def judged_split(self) -> str:
        """The split a run's best weights are judged on at its end: test, else validation, else training."""
        return "test" if "test" in self.splits else ("val" if "val" in self.splits else "train")

    def close(self) -> None:
        """Remove the held-out rows kept on disk (:mod:`dlcli.data.spill`); nothing else needs closing."""
        for x, _ in self.splits.values():
            if isinstance(x, SpilledRows):
                x.close()

    @property
    def num_classes(self) -> int | None:
        classes = self.preprocessing.classes
        return len(classes) if classes else None


def split_indices(n: int, seed: int, fractions: dict[str, float]) -> dict[str, np.ndarray]:
    """Seeded disjoint index sets: each named fraction, and 'train' the rest."""
    order = np.random.default_rng(seed).permutation(n)
    out, start = {}, 0
    for name, fraction in fractions.items():
        count = int(round(n * fraction))
        out[name], start = order[start:start + count], start + count
    out["train"] = order[start:]
    if len(out["train"]) == 0:
        raise DlcliError(f"data: with {n} examples, validation_split and test_split leave no training examples. "
                         "Lower them.")
    return out


def split_fractions(config: DataConfig, extra: dict) -> dict[str, float]:
    """The fractions of the data to hold out: test and val, unless their own files (``extra``) give them."""
    fractions = {}
    if config.test_split and "test" not in extra:
        fractions["test"] = config.test_split
    if config.validation_split and "val" not in extra:
        fractions["val"] = config.validation_split
    return fractions
