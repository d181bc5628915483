"""Pictures of what unsupervised models learned: reconstructions, latent spaces, samples.

- reconstruction tasks: ``reconstructions.png`` (originals above their
  reconstructions) for image data, ``latent_space.png`` (the 2-D codes of
  the test split coloured by label) when the code has two units, and for a
  VAE ``samples.png`` + ``samples.npz`` decoded from N(0, 1) noise;
- adversarial tasks: ``samples.npz`` and ``samples.png`` (an image grid, or
  generated points over the data), plus ``samples/epoch_NNN.png`` after
  every epoch for image data, to watch the generator learn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from dlcli.files import atomic_path
from dlcli.models.autoencoder import VAE
from dlcli.models.gan import GAN
from dlcli.report.plots import new_figure, save_png

SAMPLES = 1000  # generated examples saved to samples.npz
GRID = 100  # examples shown in a sample grid

# Compiled once per model structure and shape, not once per epoch.
generate = jax.jit(lambda model, z: model.generate(z))
reconstruct = jax.jit(lambda model, x: model(x))
encode = jax.jit(lambda model, x: model.encode(x))
decode_noise = jax.jit(lambda model, key: model.sample(key, SAMPLES))


def is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[-1] in (1, 3) or len(shape) == 2 and min(shape) >= 4


def image_grid(images: np.ndarray, columns: int = 10, scale: int = 4) -> np.ndarray:
    """(N, H, W[, C]) images in [0, 1] tiled into one (rows*H*scale, columns*W*scale[, C]) picture."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    border = [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (images.ndim - 3)
    images = np.pad(images, border, constant_values=0.35)  # a grey frame keeps neighbours apart
    rows = -(-len(images) // columns)
    pad = rows * columns - len(images)
    images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
    height, width = images.shape[1:3]
    tiled = images.reshape(rows, columns, height, width, *images.shape[3:]).swapaxes(1, 2)
    tiled = tiled.reshape(rows * height, columns * width, *images.shape[3:])
    return tiled.repeat(scale, axis=0).repeat(scale, axis=1)


def save_image(picture: np.ndarray, path: Path) -> Path:
    """A grey (or RGB) picture as a PNG, without a figure: cheap enough for every epoch."""
    import matplotlib.image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        matplotlib.image.imsave(temporary, picture, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return path


def displayable(images: np.ndarray, setup) -> np.ndarray:
    """Model-space images back in [0, 1] for display (undoing standardisation)."""
    pre = setup.data.preprocessing
    if pre.mean is None:
        return images
    flat = images.reshape(len(images), -1) * np.asarray(pre.std, np.float32) + np.asarray(pre.mean, np.float32)
    return flat.reshape(images.shape)


def eval_model(setup, state) -> nnx.Module:
    return nnx.merge(setup.built.eval_graph, state.params, state.rest, copy=True)


def write_epoch_figures(run_dir: Path, setup, state, epoch: int) -> None:
    """After each epoch: whatever the run's task draws then (a GAN's samples on image data)."""
    setup.built.task.write_epoch_figures(run_dir, setup, state, epoch)


def write_task_figures(folder: Path, setup, last, best) -> dict[str, Any]:
    """The final pictures of what the run's task learned (reconstructions, samples; nothing for others)."""
    return setup.built.task.write_figures(folder, setup, last, best)


def write_sample_grid(run_dir: Path, setup, state, epoch: int) -> None:
    """A grid of a GAN's samples on image data (fixed noise, so frames compare); nothing for other data."""
    if not is_image(tuple(setup.data.preprocessing.input_shape)):
        return
    gan = eval_model(setup, state)
    z = jax.random.normal(jax.random.key(setup.recipe.seed), (GRID, gan.noise_dim))
    fakes = displayable(np.asarray(generate(gan, z)), setup)
    save_image(image_grid(fakes), run_dir / "plots" / "samples" / f"epoch_{epoch:03d}.png")


def held_out(setup) -> tuple[np.ndarray, np.ndarray | None]:
    split = next(s for s in ("test", "val", "train") if s in setup.data.splits)
    return setup.data.splits[split][0], setup.data.labels.get(split)


def reconstruction_figures(folder: Path, setup, model) -> dict[str, Any]:
    x, labels = held_out(setup)
    shape = tuple(setup.data.preprocessing.input_shape)
    task = setup.built.task
    written = {}
    if is_image(shape):
        originals = x[:20]
        rebuilt = np.asarray(task.link(reconstruct(model, originals)))
        pairs = np.concatenate([originals[:10], rebuilt[:10], originals[10:], rebuilt[10:]])
        written["reconstructions"] = str(save_image(image_grid(displayable(pairs, setup)),
                                                    folder / "reconstructions.png"))
    if model.latent == 2:
        codes = np.asarray(encode(model, x))
        written["latent_space"] = str(plot_latent(codes, labels, setup.data.preprocessing.classes,
                                                  folder / "latent_space.png"))
    if isinstance(model, VAE):
        samples = np.asarray(task.link(decode_noise(model, jax.random.key(setup.recipe.seed))))
        written.update(save_samples(folder, setup, displayable(samples, setup)))
    return written


def adversarial_figures(folder: Path, setup, gan: GAN) -> dict[str, Any]:
    z = jax.random.normal(jax.random.key(setup.recipe.seed), (SAMPLES, gan.noise_dim))
    samples = displayable(np.asarray(generate(gan, z)), setup)
    return save_samples(folder, setup, samples)


def save_samples(folder: Path, setup, samples: np.ndarray) -> dict[str, Any]:
    """samples.npz (x = generated examples) and a picture of them."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder.parent / "samples.npz") as temporary, temporary.open("wb") as file:
        np.savez(file, x=samples)
    written = {"samples": str(folder.parent / "samples.npz")}
    shape = samples.shape[1:]
    if is_image(shape):
        written["samples_png"] = str(save_image(image_grid(samples[:GRID]), folder / "samples.png"))
    elif shape == (2,):
        data = displayable(setup.data.splits["train"][0], setup)
        written["samples_png"] = str(plot_points(data, samples, folder / "samples.png"))
    return written


def plot_latent(codes: np.ndarray, labels: np.ndarray | None, classes: list[str] | None, path: Path) -> Path:
    """The 2-D codes as a scatter, one colour per class."""
    figure = new_figure(6, 5)
    axis = figure.subplots()
    if labels is None:
        axis.scatter(codes[:, 0], codes[:, 1], s=6)
    else:
        points = axis.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=6)
        legend = axis.legend(*points.legend_elements(), title="label", fontsize="small", loc="best")
        if classes:
            for text in legend.get_texts():
                index = int("".join(ch for ch in text.get_text() if ch.isdigit() or ch == "-") or 0)
                text.set_text(classes[index] if 0 <= index < len(classes) else text.get_text())
    axis.set(title="latent space (test split)", xlabel="code 1", ylabel="code 2")
    axis.grid(alpha=0.3)
    return save_png(figure, path)


def plot_points(data: np.ndarray, samples: np.ndarray, path: Path) -> Path:
    """Generated 2-D points over the training data."""
    figure = new_figure(5, 5)
    axis = figure.subplots()
    axis.scatter(data[:, 0], data[:, 1], s=4, alpha=0.3, label="data")
    axis.scatter(samples[:, 0], samples[:, 1], s=4, alpha=0.5, label="generated")
    axis.set(title="generated samples", aspect="equal")
    axis.legend(loc="upper right")
    return save_png(figure, path)
