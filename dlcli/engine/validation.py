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
  row) are assembled, in the order of the gathered targets (process order).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.tree_util import register_pytree_node_class

from dlcli.data.aligned import zeros_aligned
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
    """Every process's held-out rows as one (S, B, ...) array split along B, and where each process's rows are.

    Process p's rows fill columns ``[start, start + width)`` of every step, in
    order, then padding: ``blocks[p] = (start, count)`` with ``count`` its rows,
    and ``width`` the columns each process holds (static: the program slices
    them out instead of scattering rows by a gathered index).
    """

    def __init__(self, x: jax.Array, mesh: Mesh, blocks: tuple[tuple[int, int], ...], width: int):
        self.x, self.mesh, self.blocks, self.width = x, mesh, blocks, width

    def __len__(self) -> int:
        return sum(count for _, count in self.blocks)

    def tree_flatten(self):
        return (self.x,), (self.mesh, self.blocks, self.width)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


def shard_held_out(x: np.ndarray, mesh: Mesh) -> ShardedInputs:
    """This process's rows ``x`` (n, ...) placed as its part of every batch of a split spread over processes."""
    from jax.experimental.multihost_utils import process_allgather

    processes = jax.process_count()
    counts = np.asarray(process_allgather(np.array([len(x)], np.int64))).reshape(-1)
    batch = mesh.size * math.ceil(EVAL_BATCH / mesh.size)
    local = batch // processes  # every process holds as many devices of the mesh
    steps = max(1, math.ceil(int(counts.max()) / local))
    # Page-aligned, so that JAX on a CPU places the rows in place: one copy of the share, not two
    rows = zeros_aligned((steps * local, *x.shape[1:]))
    rows[:len(x)] = x
    del x  # the caller handed its only reference over: the unpadded share goes now
    sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
    global_shape = (steps, batch, *rows.shape[1:])
    placed = jax.make_array_from_process_local_data(sharding, rows.reshape(steps, local, *rows.shape[1:]), global_shape)
    # Each process's devices hold one contiguous run of columns (make_array_from_process_local_data places the
    # local rows so): its first column, from where the mesh puts its devices.
    starts = [batch] * processes
    for device, index in sharding.devices_indices_map(global_shape).items():
        starts[device.process_index] = min(starts[device.process_index], index[1].start or 0)
    return ShardedInputs(placed, mesh, tuple((start, int(n)) for start, n in zip(starts, counts)), local)


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
    # One gathered copy (S, B, ...) and the split in process order (N, ...): the epoch end's largest buffers
    gathered = jax.lax.with_sharding_constraint(outputs, NamedSharding(inputs.mesh, PartitionSpec()))
    parts = [gathered[:, start:start + inputs.width].reshape(-1, *outputs.shape[2:])[:count]
             for start, count in inputs.blocks]
    return jnp.concatenate(parts)


def as_inputs(x):
    """``x`` as :func:`model_outputs` takes it: spilled rows wrapped, anything else as it is."""
    return DiskInputs(x) if isinstance(x, SpilledRows) else x
