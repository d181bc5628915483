"""Data augmentation on the device, inside the compiled train step.

The lecture's flip / rotate / crop-and-pad slide: each training batch is
transformed afresh, so the network never sees exactly the same image twice
and cannot memorise pixel positions. Everything here is jax code that runs
inside the jitted step with a key split from the train state, so it costs no
host round trip, is reproducible from the seed and resumes exactly.

A recipe turns augmentations on in ``[train.augment]``, keyed by the names
registered below; ``true`` takes the defaults, a table sets them, and they
apply in the order written::

    [train.augment]
    rotate = { degrees = 10 }
    translate = { fraction = 0.1 }
    noise = { std = 0.05 }

Only image-shaped inputs ``[N, H, W, C]`` can be augmented (a table's
columns have no left, right or neighbours).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

from dlcli.errors import DlcliError
from dlcli.registry import Registry

AUGMENTATIONS = Registry("augmentation")

ImageFn = Callable[[jax.Array, jax.Array], jax.Array]  # (key, image (H, W, C)) -> image (H, W, C)


def _check(name: str, key: str, value: float, low: float, high: float = math.inf) -> None:
    if not low <= value <= high:
        limit = f"between {low} and {high}" if math.isfinite(high) else f">= {low}"
        raise DlcliError(f"train.augment.{name}.{key} = {value}: must be {limit}.")


def _resample(image: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """Bilinear samples of ``image`` (H, W, C) at (H, W) source coordinates; outside is 0."""
    channels = jnp.moveaxis(image, -1, 0)  # (C, H, W)
    out = jax.vmap(lambda c: map_coordinates(c, [rows, cols], order=1, mode="constant", cval=0.0))(channels)
    return jnp.moveaxis(out, 0, -1)


def _grid(image: jax.Array) -> tuple[jax.Array, jax.Array]:
    height, width = image.shape[:2]
    return jnp.meshgrid(jnp.arange(height, dtype=image.dtype), jnp.arange(width, dtype=image.dtype), indexing="ij")


@AUGMENTATIONS.register("flip_horizontal")
def flip_horizontal(*, probability: float = 0.5) -> ImageFn:
    """Mirror left-right with ``probability`` (right for scenes, wrong for digits and text)."""
    _check("flip_horizontal", "probability", probability, 0.0, 1.0)
    return lambda key, image: jnp.where(jax.random.bernoulli(key, probability), image[:, ::-1], image)


@AUGMENTATIONS.register("flip_vertical")
def flip_vertical(*, probability: float = 0.5) -> ImageFn:
    """Mirror top-bottom with ``probability``."""
    _check("flip_vertical", "probability", probability, 0.0, 1.0)
    return lambda key, image: jnp.where(jax.random.bernoulli(key, probability), image[::-1], image)


@AUGMENTATIONS.register("rotate")
def rotate(*, degrees: float = 15.0) -> ImageFn:
    """Rotate about the centre by an angle drawn uniformly from [-degrees, degrees]; corners fill with 0."""
    _check("rotate", "degrees", degrees, 0.0, 180.0)

    def apply(key: jax.Array, image: jax.Array) -> jax.Array:
        angle = jnp.deg2rad(jax.random.uniform(key, minval=-degrees, maxval=degrees))
        rows, cols = _grid(image)
        center_r, center_c = (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
        dr, dc = rows - center_r, cols - center_c
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        return _resample(image, center_r + cos * dr - sin * dc, center_c + sin * dr + cos * dc)

    return apply


@AUGMENTATIONS.register("translate")
def translate(*, fraction: float = 0.1) -> ImageFn:
    """Shift by up to ``fraction`` of the height and width (bilinear, sub-pixel); the gap fills with 0."""
    _check("translate", "fraction", fraction, 0.0, 1.0)

    def apply(key: jax.Array, image: jax.Array) -> jax.Array:
        limits = jnp.array(image.shape[:2], image.dtype) * fraction
        shift = jax.random.uniform(key, (2,), minval=-limits, maxval=limits)
        rows, cols = _grid(image)
        return _resample(image, rows - shift[0], cols - shift[1])

    return apply


@AUGMENTATIONS.register("crop")
def crop(*, padding: int = 2) -> ImageFn:
    """Pad each side with ``padding`` zero pixels, then cut a random window of the original size."""
    _check("crop", "padding", padding, 0)

    def apply(key: jax.Array, image: jax.Array) -> jax.Array:
        padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
        row, col = jax.random.randint(key, (2,), 0, 2 * padding + 1)
        return jax.lax.dynamic_slice(padded, (row, col, 0), image.shape)

    return apply


@AUGMENTATIONS.register("noise")
def noise(*, std: float = 0.05) -> ImageFn:
    """Add Gaussian noise of standard deviation ``std`` (in the units the model sees) to every pixel."""
    _check("noise", "std", std, 0.0)
    return lambda key, image: image + std * jax.random.normal(key, image.shape, image.dtype)


def build_augment(spec: Mapping[str, Any], input_shape: list[int] | tuple[int, ...]) -> Callable | None:
    """``augment(key, x) -> x`` for batches ``(B, H, W, C)``, or None when ``spec`` turns nothing on.

    Args:
      spec: the recipe's ``[train.augment]`` table: name -> true/false or a table of settings.
      input_shape: one example's shape as the model sees it.
    """
    chosen: list[ImageFn] = []
    for name, setting in spec.items():
        if setting is False:
            continue
        if setting is True:
            setting = {}
        if not isinstance(setting, Mapping):
            raise DlcliError(f"train.augment.{name} = {setting!r}: use true, false or a table of settings, e.g. "
                             f"{name} = {{ ... }}.")
        chosen.append(AUGMENTATIONS.build(name, setting, where=f"train.augment.{name}"))
    if not chosen:
        return None
    if len(input_shape) != 3:
        raise DlcliError(f"train.augment needs image inputs of shape [N, height, width, channels], but this data "
                         f"has {list(input_shape)} per example. Remove [train.augment], or use image data "
                         "(e.g. data.source = \"digits\" or an NPZ whose x is (N, H, W, C)).")

    def augment_one(key: jax.Array, image: jax.Array) -> jax.Array:
        for i, fn in enumerate(chosen):
            image = fn(jax.random.fold_in(key, i), image)
        return image

    def augment(key: jax.Array, x: jax.Array) -> jax.Array:
        keys = jax.random.split(key, x.shape[0])  # one key per example
        return jax.vmap(augment_one)(keys, x)  # (B, H, W, C)

    return augment
