"""Convolutional networks: conv -> activation -> max-pool blocks, then dense layers.

A convolution slides a small kernel over the image, so the same weights
detect an edge or a stroke wherever it appears; max pooling keeps the
strongest response in each window, halving the resolution and giving some
invariance to small shifts. The input shape ``(H, W, C)`` comes from the
data; a ``(H, W)`` grey image gets its channel axis added.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from dlcli.activations import ActivationSpec
from dlcli.errors import DlcliError
from dlcli.models.layers import Activation, Dropout, Flatten, Sequential


class Conv2D(nnx.Module):
    """A 2-D convolution (cross-correlation, like ``nnx.Conv``: kernel (k, k, C_in, C_out), bias (C_out,)).

    On CPU it is computed as one matrix product over the image's k*k shifted
    copies (im2col): XLA:CPU runs a convolution inside the scanned epoch about
    four times slower than the same arithmetic as a matmul (benchmarks/
    zoo_vs_keras.py). Elsewhere it is XLA's own convolution (cuDNN on GPU).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: str, rngs: nnx.Rngs):
        self.name = f"{out_channels}@{kernel_size}x{kernel_size} {padding.lower()}"
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros((out_channels,)))
        self.kernel_size, self.padding = kernel_size, padding

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, H, W, C_in) -> (B, H', W', C_out)
        kernel, k = self.kernel[...], self.kernel_size
        if jax.default_backend() != "cpu":
            out = jax.lax.conv_general_dilated(x, kernel, (1, 1), self.padding,
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return out + self.bias[...]
        if self.padding == "SAME":
            x = jnp.pad(x, ((0, 0), ((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2), (0, 0)))
        height, width = x.shape[1] - k + 1, x.shape[2] - k + 1
        # (B, H', W', k*k*C_in): every kernel offset's view, in the kernel's (row, column, channel) order
        patches = jnp.concatenate([x[:, i:i + height, j:j + width, :] for i in range(k) for j in range(k)], axis=-1)
        return patches @ kernel.reshape(-1, kernel.shape[-1]) + self.bias[...]


class MaxPool(nnx.Module):
    """Max over ``size x size`` windows with stride ``size``: (B, H, W, C) -> (B, H/size, W/size, C).

    Written as a reshape and a max (rows and columns that do not fill a window
    are dropped, as VALID pooling does): its gradient is a cheap mask, where
    ``reduce_window``'s select-and-scatter is slow on XLA:CPU.
    """

    def __init__(self, size: int):
        self.name = f"{size}x{size}"
        self.size = size

    def __call__(self, x: jax.Array) -> jax.Array:
        s, (batch, height, width, channels) = self.size, x.shape
        x = x[:, :height // s * s, :width // s * s]
        return x.reshape(batch, height // s, s, width // s, s, channels).max(axis=(2, 4))


class AddChannel(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x[..., None]  # (B, H, W) -> (B, H, W, 1)


def image_shape(in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(in_shape) == 2:
        return (*in_shape, 1)
    if len(in_shape) != 3:
        raise DlcliError(f"[model] kind = 'cnn' needs images shaped (H, W) or (H, W, C) per example; the data "
                         f"has shape {list(in_shape)}. Use an NPZ whose x is (N, H, W, C), or kind = 'mlp'.")
    return in_shape  # type: ignore[return-value]


def conv_stack(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, blocks: list[tuple[int, int, str]],
               pool_size: int, activation: ActivationSpec, dense: list[int], dropout: float) -> Sequential:
    """Blocks of (filters, kernel, padding), each conv -> activation -> max-pool; then dense -> logits."""
    height, width, channels = image_shape(in_shape)
    layers: list[nnx.Module] = [AddChannel()] if len(in_shape) == 2 else []
    for block, (filters, kernel, padding) in enumerate(blocks, start=1):
        layers += [Conv2D(channels, filters, kernel, padding, rngs), Activation(activation)]
        if padding == "VALID":
            height, width = height - kernel + 1, width - kernel + 1
        if pool_size > 1:
            if min(height, width) < pool_size:
                raise DlcliError(f"[model]: block {block} of {len(blocks)} has a {height}x{width} feature map "
                                 f"before pooling, too small for pool_size = {pool_size}. Use fewer filters blocks "
                                 "or a smaller pool_size.")
            layers.append(MaxPool(pool_size))
            height, width = height // pool_size, width // pool_size
        channels = filters
    layers.append(Flatten())
    features = height * width * channels
    for size in dense:
        layers += [nnx.Linear(features, size, rngs=rngs), Activation(activation)]
        if dropout:
            layers.append(Dropout(dropout, rngs=rngs))
        features = size
    layers.append(nnx.Linear(features, out_dim, rngs=rngs))
    return Sequential(*layers)


def cnn(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, filters: list[int] = [32, 64],
        kernel_size: int = 3, padding: Literal["SAME", "VALID"] = "SAME", pool_size: int = 2,
        activation: ActivationSpec = "relu", dense: list[int] = [128], dropout: float = 0.0) -> nnx.Module:
    """Conv blocks then dense layers; the output layer is linear (logits).

    Args:
      filters: output channels of each conv block, e.g. ``[32, 64]`` (one block each).
      kernel_size: the square kernel's side.
      padding: ``SAME`` keeps the size, ``VALID`` shrinks it by ``kernel_size - 1``.
      pool_size: max-pooling window and stride after each block (1 = no pooling).
      activation: the non-linearity after each conv and dense layer.
      dense: widths of the dense layers after the last block.
      dropout: drop probability after each dense activation (training only).
    """
    if kernel_size < 1 or pool_size < 1:
        raise DlcliError("[model]: kernel_size and pool_size must be >= 1.")
    blocks = [(f, kernel_size, padding) for f in filters]
    return conv_stack(in_shape, out_dim, rngs, blocks, pool_size, activation, dense, dropout)


def lenet(in_shape: tuple[int, ...], out_dim: int, rngs: nnx.Rngs, *, activation: ActivationSpec = "tanh",
          dropout: float = 0.0) -> nnx.Module:
    """LeNet-5 (LeCun et al., 1998): 6 and 16 filters of 5x5, each max-pooled, then 120 -> 84 -> classes.

    The first convolution pads (28x28 MNIST stands in for the paper's padded
    32x32), the second does not: 28 -> pool 14 -> conv 10 -> pool 5.
    """
    blocks = [(6, 5, "SAME"), (16, 5, "VALID")]
    return conv_stack(in_shape, out_dim, rngs, blocks, 2, activation, [120, 84], dropout)
