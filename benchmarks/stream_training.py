"""Does streaming keep up with training? One epoch of the HIGGS MLP fed three ways.

The course's network (28 -> 100 ReLU -> 1, Adam 1e-3, batch 128) as a
jitted chunk: a ``lax.scan`` over the 64 batches of an 8,192-row chunk, the
old state donated, as dlcli's engine compiles it. The same rows reach it:

  resident  all training rows on the device, each chunk gathered there by a
            host-drawn permutation (the engine's in-memory path);
  array     :class:`dlcli.data.feed.ArrayFeed` chunks from host memory;
  stream    :class:`dlcli.data.stream.ParquetFeed` chunks from the Parquet
            parts, read and shuffled on a thread while the chunk trains.

Rows/s of one epoch after a compiling warm-up chunk. Uses the data set of
``benchmarks/stream_vs_grain.py`` (generated into /tmp). Run::

    PYTHONPATH=. python benchmarks/stream_training.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from stream_vs_grain import CHUNK, FEATURES, generate

BATCH = 128


def train_chunk_fn():
    import jax
    import jax.numpy as jnp
    import optax

    optimizer = optax.adam(1e-3)

    def loss(params, x, y, w):
        hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
        logits = (hidden @ params["w2"] + params["b2"])[:, 0]
        return (optax.sigmoid_binary_cross_entropy(logits, y) * w).sum() / jnp.maximum(w.sum(), 1.0)

    def step(state, batch):
        params, opt = state
        grads = jax.grad(loss)(params, *batch)
        updates, opt = optimizer.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), None

    @jax.jit
    def chunk(state, x, y, w):  # x (CHUNK, 28) -> (CHUNK // BATCH, BATCH, 28) batches
        batches = (x.reshape(-1, BATCH, 28), y.astype(jnp.float32).reshape(-1, BATCH), w.reshape(-1, BATCH))
        return jax.lax.scan(step, state, batches)[0]

    def initial_state():
        key1, key2 = jax.random.split(jax.random.key(0))
        params = {"w1": jax.random.normal(key1, (28, 100)) * 0.2, "b1": jnp.zeros(100),
                  "w2": jax.random.normal(key2, (100, 1)) * 0.1, "b2": jnp.zeros(1)}
        return params, optimizer.init(params)

    return jax.jit(chunk, donate_argnums=0), initial_state


def timed_epoch(chunks, chunk, state) -> float:
    import jax

    first = next(chunks)
    state = chunk(state, *first)  # compiles
    jax.block_until_ready(state)
    began, rows = time.perf_counter(), 0
    for x, y, w in chunks:
        state = chunk(state, x, y, w)
        rows += len(x)
    jax.block_until_ready(state)
    return rows / (time.perf_counter() - began)


def main() -> None:
    import jax
    import jax.numpy as jnp
    import pyarrow.parquet as pq

    from dlcli.data.feed import ArrayFeed
    from dlcli.data.stream import ParquetFeed

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/higgs-stream"))
    parser.add_argument("--repeats", type=int, default=3, help="epochs per way, taken in turns; the median counts")
    args = parser.parse_args()
    paths = generate(args.folder, args.rows)
    chunk, initial_state = train_chunk_fn()
    stream = ParquetFeed(paths, features=FEATURES, target="label", seed=0)
    stream.fit(stream.fit_sums(), standardize=True)
    table = pq.read_table(paths)
    x = np.stack([table.column(name).to_numpy() for name in FEATURES], axis=1).astype(np.float32)
    y = table.column("label").to_numpy().astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    del table
    array = ArrayFeed(x, y, seed=0)
    x_dev, y_dev = jax.device_put(x), jax.device_put(y)
    gather = jax.jit(lambda idx: (x_dev[idx], y_dev[idx], jnp.ones(len(idx), jnp.float32)))

    def resident(epoch):
        order = np.random.default_rng(epoch).permutation(len(x))
        return (gather(order[i:i + CHUNK]) for i in range(0, len(x) - CHUNK + 1, CHUNK))

    ways = {"resident": resident, "array": lambda epoch: (tuple(c) for c in array.chunks(epoch, 0, CHUNK)),
            "stream": lambda epoch: (tuple(c) for c in stream.chunks(epoch, 0, CHUNK))}
    rates = {name: [] for name in ways}
    for epoch in range(1, args.repeats + 1):
        for name, chunks in ways.items():
            rates[name].append(timed_epoch(chunks(epoch), chunk, initial_state()))
    stream.close()
    print(json.dumps({name: {"median_rows_per_s": round(float(np.median(r))), "epochs": [round(v) for v in r]}
                      for name, r in rates.items()}))


if __name__ == "__main__":
    main()
