"""The fit pass: preprocessing fitted on streamed training rows, as partial sums processes can combine.

A streamed data set is never whole in one array, so the statistics the
in-memory path computes at once (per-feature mean and standard deviation, the
label classes, whether the target is a class or a value) are accumulated row
group by row group into :class:`FitSums`. Sums of different row groups, or of
different processes, combine exactly (Chan et al.'s pairwise update of mean
and squared deviations, in float64), so a run of several processes gathers
every process's sums, combines them in process order, and every process
then fits the same :class:`Preprocessing`, bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np

from dlcli.data.preprocess import Preprocessing, fit_labels, label_key
from dlcli.errors import DlcliError
from dlcli.tasks import MAX_CLASSES, task_named

MAX_LABELS = 10_000  # distinct targets remembered; more are a regression target (or a recipe to fix)


@dataclasses.dataclass
class FitSums:
    """Partial statistics of some training rows: what the fit pass accumulates and processes exchange."""

    count: int  # rows
    mean: np.ndarray  # (F,) float64
    squares: np.ndarray  # (F,) float64: the sum of squared deviations from ``mean``
    labels: set[str]  # the distinct targets, by label_key (up to MAX_LABELS)
    textual: bool = False  # a target was text or a boolean: the targets are classes
    integral: bool = True  # every numeric target was a whole number
    many_labels: bool = False  # more than MAX_LABELS distinct targets were seen

    @classmethod
    def empty(cls, features: int) -> "FitSums":
        return cls(0, np.zeros(features), np.zeros(features), set())

    @classmethod
    def of_rows(cls, x: np.ndarray, targets: np.ndarray) -> "FitSums":
        """The sums of ``x`` (N, F) float32 model inputs, not yet standardised, and their raw targets."""
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        squares = ((x64 - mean) ** 2).sum(axis=0)
        distinct = np.unique(targets) if targets.dtype.kind != "O" else np.array(list(set(targets.tolist())), object)
        textual = targets.dtype.kind in "OUSb"
        integral = textual or bool(np.all(np.mod(distinct[np.isfinite(distinct)], 1) == 0))
        return cls(len(x), mean, squares, {label_key(v) for v in distinct[:MAX_LABELS + 1]}, textual, integral,
                   len(distinct) > MAX_LABELS)

    def encode(self) -> str:
        """JSON text to send to the other processes; :meth:`decode` reads it back exactly."""
        return json.dumps({**dataclasses.asdict(self), "mean": self.mean.tolist(), "squares": self.squares.tolist(),
                           "labels": sorted(self.labels)})

    @classmethod
    def decode(cls, text: str) -> "FitSums":
        fields = json.loads(text)
        return cls(**{**fields, "mean": np.array(fields["mean"]), "squares": np.array(fields["squares"]),
                      "labels": set(fields["labels"])})


def combine_fit_sums(parts: Sequence[FitSums]) -> FitSums:
    """The sums of the rows of all ``parts``, combined in the order given.

    In a run of P processes this is where the reduction goes: each process
    calls :meth:`dlcli.data.stream.ParquetFeed.fit_sums` on its own share,
    the caller gathers the P :meth:`FitSums.encode` texts (the coordinator's
    key-value store, or ``jax.experimental.multihost_utils``), and every
    process combines them in process order, so that all fit the same numbers.
    """
    total = parts[0]
    for part in parts[1:]:
        count = total.count + part.count
        if not part.count:
            continue
        delta = part.mean - total.mean
        labels = total.labels | part.labels
        total = FitSums(count, total.mean + delta * (part.count / count),
                        total.squares + part.squares + delta ** 2 * (total.count * part.count / count),
                        labels if len(labels) <= MAX_LABELS else set(), total.textual or part.textual,
                        total.integral and part.integral,
                        total.many_labels or part.many_labels or len(labels) > MAX_LABELS)
    return total


def fitted_preprocessing(sums: FitSums, raw: Preprocessing, *, standardize: bool, label_map: dict[str, int] | None,
                         task: str | None) -> Preprocessing:
    """``raw`` (columns, offsets and scales) completed with what the training rows summed in ``sums`` decide.

    The task, classes and statistics equal what :func:`dlcli.data.load_data`
    fits on the same training rows in memory.
    """
    if not sums.count:
        raise DlcliError("data: the streamed data set has no training rows: validation_split and test_split hold "
                         "out every row. Lower them.")
    task = task or _inferred_task(sums, labelled=label_map is not None)
    pre = dataclasses.replace(raw, task=task, input_shape=[len(raw.input_columns)])
    if task_named(task).classifies:
        if sums.many_labels:
            raise DlcliError(f"data.target '{raw.target}' has more than {MAX_LABELS:,} distinct values, too many "
                             "classes to learn. Set task = \"regression\" to predict the value itself.")
        pre.classes, pre.label_index = fit_labels(np.array(sorted(sums.labels)), label_map, None,
                                                  f"data.target '{raw.target}'")
    if standardize:
        std = np.sqrt(sums.squares / sums.count)
        std[std < 1e-8] = 1.0
        pre.mean, pre.std = sums.mean.tolist(), std.tolist()
    return pre


def _inferred_task(sums: FitSums, labelled: bool) -> str:
    """:func:`dlcli.tasks.infer_task`'s rule, from the sums: text, booleans and few whole numbers are classes."""
    if labelled or sums.textual:
        return "classification"
    few = not sums.many_labels and len(sums.labels) <= MAX_CLASSES
    return "classification" if sums.integral and few else "regression"
