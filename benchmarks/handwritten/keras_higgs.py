"""The course's HIGGS exercise in Keras 3 (JAX backend), as a whole process.

Reads the training and validation Parquet files, standardises with the
training statistics, fits 28 -> Dense(100, relu) -> Dense(1, sigmoid) with
Adam 1e-3, batch 128, validating after each epoch, then writes the model and
the validation AUC. Usage: keras_higgs.py TRAIN.parquet VAL.parquet OUT [EPOCHS]
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def read(path: str) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(path)
    y = table.column("label").to_numpy().astype(np.float32)
    x = np.stack([table.column(name).to_numpy() for name in table.column_names if name != "label"], axis=1)
    return x.astype(np.float32), y


x_train, y_train = read(sys.argv[1])
x_val, y_val = read(sys.argv[2])
out, epochs = Path(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1
mean, std = x_train.mean(0), x_train.std(0) + 1e-7
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
keras.utils.set_random_seed(1337)
model = keras.Sequential([keras.Input((x_train.shape[1],)), keras.layers.Dense(100, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
              metrics=["accuracy", keras.metrics.AUC(name="auc")])
history = model.fit(x_train, y_train, epochs=epochs, batch_size=128, validation_data=(x_val, y_val), verbose=0)
out.mkdir(parents=True, exist_ok=True)
model.save(out / "model.keras")
print(f"val accuracy {history.history['val_accuracy'][-1]:.4f}  val auc {history.history['val_auc'][-1]:.4f}")
