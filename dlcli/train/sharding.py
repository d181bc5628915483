"""Data parallelism over every device: one mesh, the batch split on ``data``.

The data set is placed on the devices once (replicated: any example can be
gathered by any step's indices), the parameters and optimizer state are
replicated, and each step's gather indices are sharded along the batch, so
every device computes its share of the batch and XLA inserts the gradient
all-reduce. Several hosts run the same program after
``jax.distributed.initialize()``; nothing here is hand-written communication.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dlcli.errors import DlcliError


def maybe_initialize_distributed() -> None:
    """Join a multi-process job when ``DLCLI_COORDINATOR`` (host:port) is set.

    Every process runs the same ``dlcli train`` with ``DLCLI_NUM_PROCESSES``
    and its own ``DLCLI_PROCESS_ID``; process 0 writes the run directory.
    """
    coordinator = os.environ.get("DLCLI_COORDINATOR")
    if not coordinator or jax.distributed.is_initialized():
        return
    try:
        count, index = int(os.environ["DLCLI_NUM_PROCESSES"]), int(os.environ["DLCLI_PROCESS_ID"])
    except (KeyError, ValueError):
        raise DlcliError("DLCLI_COORDINATOR is set, so DLCLI_NUM_PROCESSES (how many processes) and "
                         "DLCLI_PROCESS_ID (this one's index, 0 for the one that writes the run) must be set to "
                         "integers too.") from None
    if not 0 <= index < count:
        raise DlcliError(f"DLCLI_PROCESS_ID={index} must be between 0 and DLCLI_NUM_PROCESSES-1 ({count - 1}).")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes need a collectives backend
    jax.distributed.initialize(coordinator, num_processes=count, process_id=index)


def is_primary() -> bool:
    """True in the process that writes files (the only one, unless several processes train together)."""
    return jax.process_index() == 0


@dataclass(frozen=True)
class Placement:
    mesh: Mesh

    @property
    def devices(self) -> int:
        return self.mesh.size

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def batch_sharded(self, ndim: int) -> NamedSharding:
        """(..., B) index arrays of ``ndim`` axes split along their last (batch) axis."""
        return NamedSharding(self.mesh, PartitionSpec(*[None] * (ndim - 1), "data"))

    def put_replicated(self, tree: Any) -> Any:
        # Every process holds the same host values (same seed, same split), as
        # device_put across processes requires.
        return jax.device_put(tree, self.replicated)

    def put_batches(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(array, self.batch_sharded(array.ndim))

    @property
    def local_rows_sharding(self) -> NamedSharding:
        """(G, S, B, ...) arrays split along their batch axis B."""
        return NamedSharding(self.mesh, PartitionSpec(None, None, "data"))

    def put_local_rows(self, array: np.ndarray) -> jax.Array:
        """(G, S, B_local, ...) rows of this process's share as one global (G, S, B, ...) array, split along
        the batch axis: every process contributes its own examples of every batch, none holds another's."""
        global_shape = (*array.shape[:2], array.shape[2] * jax.process_count(), *array.shape[3:])
        return jax.make_array_from_process_local_data(self.local_rows_sharding, array, global_shape)


def placement_for(batch_size: int) -> Placement:
    """All devices when the batch divides evenly among them, otherwise the first one."""
    devices = jax.devices()
    if len(devices) > 1 and batch_size % len(devices):
        devices = devices[:1]
    return Placement(Mesh(np.array(devices), ("data",)))


def gather_rows(array: np.ndarray) -> np.ndarray:
    """Every process's rows of ``array``, concatenated in process order: the same array in every process.

    For what every process must hold whole though each read only its share
    (the held-out splits, small next to the training rows).
    """
    return array if jax.process_count() == 1 else np.concatenate(process_parts(array))


def gather_texts(text: str) -> list[str]:
    """Every process's ``text``, in process order (one item in a single process)."""
    if jax.process_count() == 1:
        return [text]
    return [bytes(part).decode() for part in process_parts(np.frombuffer(text.encode(), np.uint8))]


def process_parts(array: np.ndarray) -> list[np.ndarray]:
    """Every process's ``array`` (its rows may number differently in each), in process order."""
    from jax.experimental.multihost_utils import process_allgather

    counts = np.asarray(process_allgather(np.array([len(array)], np.int64))).reshape(-1)
    padded = np.zeros((int(counts.max()), *array.shape[1:]), array.dtype)  # allgather wants equal shapes
    padded[:len(array)] = array
    parts = np.asarray(process_allgather(padded))  # (P, longest, ...)
    return [parts[p][:count] for p, count in enumerate(counts)]
