"""mlp-xor in Keras 3 (JAX backend): 2 -> 4 tanh -> 1, Adam 0.05, 300 full-batch epochs, saved."""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
import numpy as np  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "keras-xor-out")
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
y = np.array([0, 1, 1, 0], np.float32)
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="tanh"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, epochs=300, batch_size=4, verbose=0)
out.mkdir(parents=True, exist_ok=True)
model.save(out / "model.keras")
print(f"accuracy {history.history['accuracy'][-1]:.4f}  final loss {history.history['loss'][-1]:.4f}")
