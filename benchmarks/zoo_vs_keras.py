"""dlcli's CNN and LSTM training against an equivalent Keras 3 ``fit`` (JAX backend).

Two bundled recipes, each trained by both on the *same* training split (the
one dlcli's recipe makes), same architecture, optimizer, loss and batch size:

  digits-cnn  8x8x1 -> Conv(32, 3x3, same) relu -> MaxPool 2 -> Conv(64) relu
              -> MaxPool 2 -> Dense(128) relu -> Dense(10); Adam 1e-3, batch 32
  sine-lstm   (40, 1) -> LSTM(32) -> Dense(1); Adam 5e-3, MSE, batch 32

Trainers: ``dlcli`` (the recipe through ``dlcli.train.loop.train``; an epoch
is a few scanned, compiled chunks), ``keras`` (``model.fit`` defaults,
``verbose=0``) and ``keras-spe32`` (``compile(steps_per_execution=32)``).
Timing covers training only (no validation for either), the first epoch
(compilation) left out: samples/s = training examples / seconds per epoch,
in wall seconds and in CPU seconds of the process (all threads; on a
machine shared with other work the CPU figure is the steadier one).

    pip install -e '.[bench]'
    python benchmarks/zoo_vs_keras.py                  # 6 epochs each, 3 interleaved repeats
    python benchmarks/zoo_vs_keras.py --epochs 3 --only digits-cnn
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"  # Keras must share dlcli's JAX runtime; never TensorFlow

import numpy as np  # noqa: E402

RECIPES = ("digits-cnn", "sine-lstm")


class CpuClock:
    """A silent reporter noting the process's CPU time (all threads) at each epoch end."""

    def __init__(self):
        self.marks = [time.process_time()]

    def start(self, *args) -> None:
        self.marks = [time.process_time()]

    def epoch(self, record: dict) -> None:
        self.marks.append(time.process_time())

    def advance(self, steps: int) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def run_dlcli(name: str, epochs: int, folder: Path) -> tuple[float, float, dict]:
    """(samples per wall second, samples per CPU second, summary), epochs 2.. only."""
    from dlcli.recipe import load_recipe
    from dlcli.train.loop import train

    loaded = load_recipe(name, [f"train.epochs={epochs}", "data.validation_split=0.0"])
    clock = CpuClock()
    result = train(loaded, folder, clock)
    steady = [r["time_s"] for r in result.history[1:]]
    examples = result.history[-1]["samples_per_s"] * result.history[-1]["time_s"]
    cpu = statistics.median(b - a for a, b in zip(clock.marks[1:], clock.marks[2:]))
    return examples / statistics.median(steady), examples / cpu, result.summary


def training_split(name: str):
    from dlcli.data import load_data
    from dlcli.recipe import load_recipe

    loaded = load_recipe(name, ["data.validation_split=0.0"])
    recipe = loaded.recipe
    data = load_data(recipe.data, recipe.seed, loaded.resolve_path, task=recipe.task)
    return data.splits["train"]


def keras_model(name: str, input_shape: tuple[int, ...]):
    import keras

    layers = keras.layers
    if name == "digits-cnn":
        model = keras.Sequential([
            keras.Input(input_shape),
            layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)])
        return model, keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = keras.Sequential([keras.Input(input_shape), layers.LSTM(32), layers.Dense(1)])
    return model, keras.optimizers.Adam(5e-3), keras.losses.MeanSquaredError()


def run_keras(name: str, epochs: int, steps_per_execution: int) -> tuple[float, float]:
    import keras

    x, y = training_split(name)
    keras.utils.set_random_seed(0)
    model, optimizer, loss = keras_model(name, x.shape[1:])
    model.compile(optimizer=optimizer, loss=loss, steps_per_execution=steps_per_execution)
    wall: list[float] = []
    cpu: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            wall.append(time.perf_counter() - self.started[0])
            cpu.append(time.process_time() - self.started[1])

    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=True, callbacks=[Clock()])
    return len(x) / statistics.median(wall[1:]), len(x) / statistics.median(cpu[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trainer (the first is not timed)")
    parser.add_argument("--only", choices=RECIPES, help="benchmark one recipe")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; the median is reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch compiles and is not timed")
    import jax

    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in [args.only] if args.only else RECIPES:
            rates: dict[str, list[float]] = {}
            for _ in range(args.repeat):  # interleaved, so that a busy machine slows every trainer alike
                *dlcli_rates, summary = run_dlcli(name, args.epochs, Path(folder))
                rates.setdefault("dlcli", []).append(dlcli_rates)
                try:
                    rates.setdefault("keras", []).append(run_keras(name, args.epochs, 1))
                    rates.setdefault("keras-spe32", []).append(run_keras(name, args.epochs, 32))
                except ImportError:
                    print("keras is not installed: pip install -e '.[bench]'", file=sys.stderr)
            row = {"recipe": name, "dlcli_compilations": summary["compilations"]["train_chunk"]}
            for trainer, pairs in rates.items():
                if pairs:
                    row[trainer] = statistics.median(wall for wall, _ in pairs)
                    row[f"{trainer} per cpu-s"] = statistics.median(cpu for _, cpu in pairs)
            results.append(row)
    device = jax.devices()[0]
    if args.json:
        print(json.dumps({"device": f"{device.platform} x{jax.device_count()}", "results": results}, indent=2))
        return 0
    print(f"training samples/s, median of epochs 2..{args.epochs}, median of {args.repeat} interleaved runs, "
          f"device {device.platform} x{jax.device_count()}")
    print("(per cpu-s: samples per CPU second of the process, all threads; steadier than wall time on a busy machine)")
    print(f"{'recipe':<12} {'per':<6} {'dlcli':>10} {'keras':>10} {'keras-spe32':>12} {'dlcli/keras':>12} "
          f"{'dlcli/spe32':>12}")
    for row in results:
        for label, suffix in (("wall-s", ""), ("cpu-s", " per cpu-s")):
            ours = row["dlcli" + suffix]
            keras_rate = row.get("keras" + suffix, float("nan"))
            spe = row.get("keras-spe32" + suffix, float("nan"))
            print(f"{row['recipe']:<12} {label:<6} {ours:>10,.0f} {keras_rate:>10,.0f} {spe:>12,.0f} "
                  f"{ours / keras_rate:>12.2f} {ours / spe:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
