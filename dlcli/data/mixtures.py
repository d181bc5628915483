"""Generated point clouds for generative models."""

from __future__ import annotations

import numpy as np

from dlcli.data.bundled import Raw


def ring_centres(modes: int, radius: float) -> np.ndarray:
    """(modes, 2) centres evenly spaced on a circle."""
    angle = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def gaussian_mixture(seed: int, *, samples: int = 4000, modes: int = 8, radius: float = 2.0,
                     spread: float = 0.05) -> Raw:
    """Points (N, 2) from ``modes`` Gaussians on a ring; y names the mode each came from."""
    rng = np.random.default_rng(seed)
    mode = rng.integers(0, modes, samples)
    x = ring_centres(modes, radius)[mode] + spread * rng.standard_normal((samples, 2))
    return Raw(x=x.astype(np.float32), y=mode.astype(np.int64), classes=[str(m) for m in range(modes)])
