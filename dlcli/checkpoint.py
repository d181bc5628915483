"""Run directories and orbax checkpoints, written atomically.

A checkpoint stores the training state's leaves; restoring needs a state of
the same structure, which the run's saved recipe rebuilds. A new checkpoint
is written beside the old one and swapped in by renames, so an interruption
at any moment leaves the last good checkpoint readable. The run's other
files are replaced whole (see :mod:`dlcli.files`).

A small state (up to :data:`SMALL_CHECKPOINT_BYTES`, every MLP recipe) is
written as one msgpack file in the layout of orbax's aggregate checkpoint
(``checkpoint``: leaf name -> array), which ``orbax.checkpoint`` restores
as it restores its own; dlcli reads it back without orbax. Importing orbax
and writing through tensorstore cost half a second of a small run; larger
states go through orbax (OCDBT).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from dlcli import files, strict_json
from dlcli.errors import DlcliError
from dlcli.files import write_text  # noqa: F401  (the run's text files are written through here too)
from dlcli.quiet import log_into


def ensure_writable(folder: Path, needed_bytes: int = 0, what: str = "run output") -> None:
    """Create ``folder`` if needed and prove a file can be written there and ``needed_bytes`` fit.

    Called before training starts, so an unwritable or full disk is the
    user's mistake (exit 2) rather than a crash an hour in.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-")
        probe.close()
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise DlcliError(f"Cannot write {what} under '{folder}': {error.strerror}. Choose another folder "
                         "with --out, or fix its permissions.") from None
    if free < needed_bytes:
        raise DlcliError(f"Not enough disk space for {what} under '{folder}': {free / 2**20:.1f} MiB free, about "
                         f"{needed_bytes / 2**20:.1f} MiB needed for checkpoints. Free some space or choose another "
                         "folder with --out.")


def create_run_dir(out: Path, name: str) -> Path:
    """A new ``out/<name>/<timestamp>`` directory; never an existing one."""
    parent = out / name
    ensure_writable(parent)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise DlcliError(f"Cannot create a new run directory under '{parent}'.")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` while training writes there, so a second ``--resume`` cannot interleave.

    From then on, what libraries log goes to the run's ``libraries.log``
    (see :mod:`dlcli.quiet`). A lock left by a process that no longer exists
    (killed with SIGKILL) is taken over. The lock appears with its owner's
    process id already in it, so a kill can never leave an empty one.
    """
    lock = run_dir / ".lock"
    for _ in range(2):
        try:
            with files.atomic_path(lock, overwrite=False) as temporary:
                temporary.write_text(str(os.getpid()))
            break
        except FileExistsError:
            try:
                owner = int(lock.read_text())
                if owner <= 0:  # 0 would signal our own process group and always look alive
                    raise ValueError(owner)
                os.kill(owner, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # stale
                continue
            except PermissionError:
                pass
            raise DlcliError(f"'{run_dir}' is being trained by process {owner} right now. Wait for it to finish or "
                             "stop it (Ctrl-C saves a checkpoint) before resuming.") from None
    else:
        raise DlcliError(f"Cannot lock '{run_dir}' for training; remove '{lock}' if no dlcli process uses it.")
    log_into(run_dir)  # the process that writes the run keeps its libraries' lines there
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """``data`` as strict JSON (numpy and JAX scalars and arrays included), replaced atomically."""
    files.write_text(path, json_text(data))


def json_text(data: Any) -> str:
    """Strict JSON (what ``jq`` reads): a NaN or infinite number, such as a diverged loss, becomes null."""
    return strict_json.json_text(data, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic, jax.Array)):
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_storable(tree: Any) -> dict[str, np.ndarray]:
    leaves = jax.tree.leaves(tree)
    out = {}
    for i, leaf in enumerate(leaves):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable and leaf.is_fully_replicated:
            leaf = leaf.addressable_data(0)  # a carry replicated over processes: this process holds all of it
        out[f"{i:05d}"] = np.asarray(leaf)
    return out


def _replicated(tree: Any) -> bool:
    """Every leaf held whole by every process (a multi-process run's carry), so one process can write it."""
    return all(not isinstance(leaf, jax.Array) or leaf.is_fully_replicated for leaf in jax.tree.leaves(tree))


SMALL_CHECKPOINT_BYTES = 64 * 2**20
AGGREGATE_FILE = "checkpoint"  # orbax's name for the msgpack file of a tree's values
_NDARRAY = 1  # orbax's (and flax's) msgpack extension type of an array: (shape, dtype name, C-order bytes)


def _packed(storable: dict[str, np.ndarray]) -> bytes:
    """``storable`` as orbax's aggregate file holds it (``orbax.checkpoint.msgpack_utils.msgpack_serialize``)."""
    import msgpack

    def array(leaf: np.ndarray) -> msgpack.ExtType:
        return msgpack.ExtType(_NDARRAY, msgpack.packb((leaf.shape, leaf.dtype.name, leaf.tobytes("C")),
                                                       use_bin_type=True))

    return msgpack.packb({key: array(leaf) for key, leaf in storable.items()}, strict_types=True)


def _unpacked(data: bytes) -> dict[str, np.ndarray]:
    import ml_dtypes
    import msgpack

    def array(code: int, payload: bytes) -> np.ndarray:
        if code != _NDARRAY:
            raise DlcliError(f"A checkpoint holds a value of msgpack type {code}, not an array; it was not written "
                             "by dlcli.")
        shape, dtype, buffer = msgpack.unpackb(payload, raw=True)
        dtype = np.dtype(getattr(ml_dtypes, dtype.decode(), dtype.decode()))  # bfloat16 and friends
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)

    return msgpack.unpackb(data, ext_hook=array, raw=False)


def save_checkpoint(path: Path, tree: Any, meta: dict[str, Any] | None = None) -> None:
    """Save ``tree``'s leaves at ``path`` (a folder), replacing an older one atomically.

    ``meta`` (JSON) is written inside the same folder before the swap, so the
    arrays and their description are always replaced together.
    """
    fresh, old = path.with_name(path.name + ".new"), path.with_name(path.name + ".old")
    # A kill leaves these half written; orbax would warn about (and remove) its own temporary folder.
    for leftover in (fresh, old, *path.parent.glob(f"{fresh.name}.orbax-checkpoint-tmp*")):
        shutil.rmtree(leftover, ignore_errors=True)
    # A small replicated tree is written by process 0 alone, without orbax (whose import alone kept 30 MB in
    # every process of a multi-process run, BENCHMARKS.md); the other processes hold the same values.
    replicated = jax.process_count() == 1 or _replicated(tree)
    storable = _to_storable(tree) if replicated else None
    small = replicated and sum(leaf.nbytes for leaf in storable.values()) <= SMALL_CHECKPOINT_BYTES
    if small and jax.process_index() != 0:
        return
    storable = storable if storable is not None else _to_storable(tree)
    try:
        if small:
            fresh.mkdir(parents=True)
            files.write_bytes(fresh / AGGREGATE_FILE, _packed(storable))
        else:
            import orbax.checkpoint as ocp

            with ocp.PyTreeCheckpointer() as checkpointer:
                checkpointer.save(fresh.resolve(), storable)
            if jax.process_index() != 0:
                return  # in a multi-process run every process joins the save, and process 0 writes it
        if meta is not None:
            write_json(fresh / "meta.json", meta)
    except OSError as error:
        shutil.rmtree(fresh, ignore_errors=True)
        raise DlcliError(f"Cannot write the checkpoint '{path}': {error.strerror}. The previous checkpoint is kept; "
                         "free some disk space.") from None
    if path.exists():
        path.rename(old)
    fresh.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_path(path: Path) -> Path:
    """``path``, or its ``.old`` twin when an interruption fell between the two renames of a swap."""
    if not path.exists() and path.with_name(path.name + ".old").exists():
        return path.with_name(path.name + ".old")
    return path


def load_meta(path: Path) -> dict[str, Any] | None:
    """The ``meta`` saved with a checkpoint, or None."""
    file = checkpoint_path(path) / "meta.json"
    return json.loads(file.read_text()) if file.is_file() else None


def load_checkpoint(path: Path, like: Any) -> Any:
    """Restore a tree saved by :func:`save_checkpoint` into the structure of ``like``."""
    path = checkpoint_path(path)
    if not path.exists():
        raise DlcliError(f"No checkpoint at '{path}'. Was the run interrupted before its first checkpoint?")
    if (path / AGGREGATE_FILE).is_file() and not (path / "_METADATA").exists():
        stored = _unpacked((path / AGGREGATE_FILE).read_bytes())
    else:
        import orbax.checkpoint as ocp

        with ocp.PyTreeCheckpointer() as checkpointer:
            stored = checkpointer.restore(path.resolve())
    leaves, treedef = jax.tree.flatten(like)
    if len(stored) != len(leaves):
        raise DlcliError(f"The checkpoint at '{path}' does not match the run's recipe ({len(stored)} arrays stored, "
                         f"{len(leaves)} expected). Was recipe.toml edited after training?")
    restored = []
    for key, leaf in zip(sorted(stored), leaves):
        value = stored[key]
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            # ``like`` may hold shapes only (an abstract model): its keys use the default implementation.
            impl = jax.random.key_impl(leaf) if isinstance(leaf, jax.Array) else None
            value = jax.random.wrap_key_data(value, impl=impl)
        restored.append(jax.numpy.asarray(value))
    return jax.tree.unflatten(treedef, restored)
