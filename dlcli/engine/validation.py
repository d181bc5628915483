"""Held-out inputs as the compiled programs see them: resident, read from disk, or spread over processes.

A split's model outputs are computed in batches of :data:`EVAL_BATCH` rows,
whichever way its inputs are held:

- resident: an (N, ...) array on the devices, gathered batch by batch;
- on disk (:class:`DiskInputs`, a streamed run's validation rows): a host
  callback reads them a chunk at a time into the program, so no process holds
  them whole; the batches are those of the resident split, and so are the numbers;
- spread over processes (:class:`ShardedInputs`): each process places its own
  rows as its part of a global (S, B, ...) array split along the batch, the
  model runs where the rows are, and only the outputs (one number or a few a
  row) are assembled, in the order of the gathered targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.tree_util import register_pytree_node_class

from dlcli.data.spill import SpilledRows
from dlcli.train.batches import eval_shape

EVAL_BATCH = 4096  # rows a forward pass of evaluation takes at once


@register_pytree_node_class
class DiskInputs:
    """Spilled rows (:class:`~dlcli.data.spill.SpilledRows`) as a program argument with no arrays: the file is
    static, read by a callback when the program runs."""

    def __init__(self, rows: SpilledRows):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def tree_flatten(self):
        return (), self.rows

    @classmethod
    def tree_unflatten(cls, rows, children):
        return cls(rows)


@register_pytree_node_class
class ShardedInputs:
    """Every process's held-out rows as one (S, B, ...) array split along B, and where each row goes.

    ``position`` (S, B) int32 holds each row's index in the split's order (the
    targets gathered in process order), or ``total`` for padding.
    """

    def __init__(self, x: jax.Array, position: jax.Array, mesh: Mesh, total: int):
        self.x, self.position, self.mesh, self.total = x, position, mesh, total

    def __len__(self) -> int:
        return self.total

    def tree_flatten(self):
        return (self.x, self.position), (self.mesh, self.total)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


def shard_held_out(x: np.ndarray, mesh: Mesh) -> ShardedInputs:
    """This process's rows ``x`` (n, ...) placed as its part of every batch of a split spread over processes."""
    from jax.experimental.multihost_utils import process_allgather

    processes, process = jax.process_count(), jax.process_index()
    counts = np.asarray(process_allgather(np.array([len(x)], np.int64))).reshape(-1)
    batch = mesh.size * math.ceil(EVAL_BATCH / mesh.size)
    local = batch // processes  # every process holds as many devices of the mesh
    steps = max(1, math.ceil(int(counts.max()) / local))
    rows = np.zeros((steps * local, *x.shape[1:]), np.float32)
    rows[:len(x)] = x
    position = np.full(steps * local, int(counts.sum()), np.int32)
    position[:len(x)] = int(counts[:process].sum()) + np.arange(len(x))
    sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
    placed = jax.make_array_from_process_local_data(sharding, rows.reshape(steps, local, *x.shape[1:]),
                                                    (steps, batch, *x.shape[1:]))
    where = jax.make_array_from_process_local_data(sharding, position.reshape(steps, local), (steps, batch))
    return ShardedInputs(placed, where, mesh, int(counts.sum()))


def model_outputs(model: Callable, inputs, batch_size: int = EVAL_BATCH) -> jax.Array:
    """``model``'s outputs (N, ...) on every row of ``inputs`` (an array, :class:`DiskInputs` or
    :class:`ShardedInputs`), in batches; traced inside a compiled program."""
    if isinstance(inputs, DiskInputs):
        return disk_outputs(model, inputs.rows, batch_size)
    if isinstance(inputs, ShardedInputs):
        return sharded_outputs(model, inputs)
    n = len(inputs)
    steps, size = eval_shape(n, batch_size)
    # Indices made in the program, not a constant of n integers in it (which XLA then carries and folds).
    idx = jax.lax.iota(jnp.int32, steps * size)
    idx = jnp.where(idx < n, idx, 0).reshape(steps, size)
    outputs = jax.lax.map(lambda i: model(inputs[i]), idx)  # (S, B, ...)
    return outputs.reshape(-1, *outputs.shape[2:])[:n]


def disk_outputs(model: Callable, rows: SpilledRows, batch_size: int) -> jax.Array:
    shape = jax.ShapeDtypeStruct((rows.chunk_rows, *rows.shape[1:]), jnp.float32)
    batch = min(batch_size, rows.chunk_rows)

    def chunk_outputs(c):
        x = jax.pure_callback(rows.chunk, shape, c, vmap_method="broadcast_all")  # (C, ...)
        return jax.lax.map(model, x.reshape(-1, batch, *x.shape[1:]))  # (C / B, B, ...)

    outputs = jax.lax.map(chunk_outputs, jnp.arange(rows.chunks, dtype=jnp.int32))  # (chunks, C / B, B, ...)
    return outputs.reshape(-1, *outputs.shape[3:])[:len(rows)]


def sharded_outputs(model: Callable, inputs: ShardedInputs) -> jax.Array:
    outputs = jax.lax.map(model, inputs.x)  # (S, B, ...), split along B as the rows are
    flat = outputs.reshape(-1, *outputs.shape[2:])
    whole = jnp.zeros((inputs.total, *flat.shape[1:]), flat.dtype)
    whole = whole.at[inputs.position.reshape(-1)].set(flat, mode="drop")  # padding's position is out of bounds
    return jax.lax.with_sharding_constraint(whole, NamedSharding(inputs.mesh, PartitionSpec()))


def as_inputs(x):
    """``x`` as :func:`model_outputs` takes it: spilled rows wrapped, anything else as it is."""
    return DiskInputs(x) if isinstance(x, SpilledRows) else x
