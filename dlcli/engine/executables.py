"""Training programs kept across runs, so that a warm run neither traces nor lowers them.

JAX's persistent cache (:mod:`dlcli.engine.compilation`) skips XLA's compile,
but its key is a hash of the lowered program, so every run still traces the
model, the step and the epoch end in Python and lowers them: for a small
recipe that is longer than its training (mlp-xor: about 0.4 s of a 2 s run).
This cache keys a program by what its trace is a function of, known before
tracing: dlcli's source code, the versions of the libraries that trace it, the
devices, XLA flags and JAX settings, the resolved recipe, the preprocessing
fitted to the data, the engine's layout and the shapes, dtypes and shardings
of the arguments. It holds the compiled executable, serialized, with the
structure of its inputs and outputs, next to JAX's cache
(``DLCLI_CACHE_DIR=off`` switches both off).

A program that could depend on anything else (one built for a comparison's
other architecture), that calls back into the process (streamed or
multi-process validation) or that runs on several devices is not kept here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import platform
from dataclasses import asdict, is_dataclass
from importlib import metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from dlcli.engine import compilation
from dlcli.files import write_bytes

LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy")


@functools.cache
def source_digest() -> str:
    """A hash of every Python file of the dlcli package: any change to the code is a new program."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def environment_key() -> str:
    """The libraries, devices, flags and JAX settings a trace and its executable depend on."""
    devices = [(d.platform, d.device_kind, d.id, d.process_index) for d in jax.devices()]
    settings = sorted((name, repr(value)) for name, value in jax.config.values.items()
                      if "cache" not in name)  # where the caches live does not change a program
    return repr((source_digest(), [metadata.version(name) for name in LIBRARIES], platform.python_version(),
                 devices, jax.process_count(), os.environ.get("XLA_FLAGS", ""), settings))


def signature(tree: Any) -> str:
    """Structure, shapes, dtypes and placements of a tree of arrays (not their values)."""
    def leaf(value: Any) -> Any:
        if isinstance(value, jax.Array):
            return ("array", value.shape, str(value.dtype), getattr(value, "weak_type", False), str(value.sharding))
        if isinstance(value, (np.ndarray, np.generic)):
            return ("host", value.shape, str(value.dtype))
        return (type(value).__name__, repr(value))

    leaves, treedef = jax.tree.flatten(tree)
    return repr((str(treedef), [leaf(value) for value in leaves]))


def traced(recipe: Any) -> Any:
    """A recipe as its programs see it, for a key: the name, description and seed are in no trace."""
    return recipe.model_copy(update={"name": "", "description": "", "seed": 0})


def plain(value: Any) -> Any:
    """A JSON-able form of recipes, preprocessing records and layouts, for the key."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if is_dataclass(value):
        return asdict(value)
    return value


def key_of(*parts: Any) -> str:
    text = json.dumps([environment_key(), *(plain(part) for part in parts)], sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def folder() -> Path | None:
    """Where programs are kept: None when the cache is off, or when the programs run on several devices
    (a deserialized executable runs on one device only)."""
    root = compilation.cache_dir()
    return None if root is None or jax.device_count() > 1 else root / "dlcli-programs"


def recall(key: str) -> Any | None:
    """What :func:`keep` stored under ``key``, or None (never stored, unreadable or from other libraries)."""
    where = folder()
    if where is None or not (where / key).is_file():
        return None
    try:
        return pickle.loads((where / key).read_bytes())
    except Exception:  # noqa: BLE001 - a damaged or foreign entry only costs a trace
        return None


def keep(key: str, value: Any) -> None:
    where = folder()
    if where is None:
        return
    try:
        where.mkdir(parents=True, exist_ok=True)
        write_bytes(where / key, pickle.dumps(value))
    except (OSError, pickle.PicklingError, TypeError, AttributeError):  # an unwritable cache only costs speed
        pass


def load_executable(key: str, name: str) -> tuple[Any, str] | None:
    """The executable stored under ``key`` and how it was compiled, loaded onto this process's devices;
    counted as program ``name`` loaded from the cache."""
    from jax.experimental.serialize_executable import deserialize_and_load

    stored = recall(key)
    if stored is None:
        return None
    serialized, in_tree, out_tree, compiled_for = stored
    try:
        executable = deserialize_and_load(serialized, in_tree, out_tree)
    except Exception:  # noqa: BLE001 - e.g. written by another jaxlib: compile again
        return None
    compilation.count_loaded(name)
    return executable, compiled_for


def keep_executable(key: str, compiled: Any, compiled_for: str) -> None:
    """Store ``compiled``, which must have been compiled in this process (see :func:`compilation.fresh`)."""
    from jax.experimental.serialize_executable import serialize

    try:
        serialized, in_tree, out_tree = serialize(compiled)
    except Exception:  # noqa: BLE001 - a backend that cannot serialize: the persistent cache still serves
        return
    keep(key, (serialized, in_tree, out_tree, compiled_for))


def kept_program(fn: Callable, args: tuple, parts: tuple | None, name: str, options: dict | None = None) -> Any:
    """``jax.jit(fn)`` compiled for ``args`` (with XLA ``options``).

    Args:
      parts: what ``fn``'s trace depends on besides the shapes of ``args`` (a recipe, its preprocessing...),
        or None: the program is then compiled (or loaded by JAX's cache) as usual. With ``parts`` it is
        loaded whole when an earlier run kept it, and otherwise compiled here and kept.
      name: the program's name in the counts of :mod:`dlcli.engine.compilation`.
    """
    jitted = jax.jit(fn)
    if parts is None or folder() is None:
        return jitted.lower(*args).compile(options)
    key = key_of(name, *parts, signature(args))
    loaded = load_executable(key, name)
    if loaded is not None:
        return loaded[0]
    lowered = jitted.lower(*args)
    if "custom_call" in lowered.as_text():  # e.g. LAPACK's QR of an orthogonal initialiser: deserialized, it
        return lowered.compile(options)  # crashed its process (a GRU's initialisation); JAX's cache serves it
    return compile_and_keep(lowered, options, key)


def compile_and_keep(lowered: Any, options: dict | None, key: str, compiled_for: str = "") -> Any:
    """``lowered`` compiled here (not loaded from JAX's cache, see :func:`compilation.fresh`), and kept under
    ``key`` with ``compiled_for`` (how it was compiled)."""
    with compilation.fresh():
        compiled = lowered.compile(options)
    keep_executable(key, compiled, compiled_for)
    return compiled


def run_once(fn: Callable, *args: Any, kept: tuple | None = None, name: str = "init") -> Any:
    """``jax.jit(fn)(*args)`` for a program a run calls once (initialisation), compiled without backend
    optimisation: it spends more time compiling than computing. With ``kept`` (what ``fn`` depends on
    besides the shapes of ``args``), later runs load it whole (:func:`kept_program`)."""
    return kept_program(fn, args, kept, name, compilation.QUICK)(*args)
