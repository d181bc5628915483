"""Compiled programs: the persistent cache across runs, and counting what a run compiles.

XLA programs are written to a per-user cache folder (``platformdirs``'
cache dir, ``dlcli/xla``), so the second run of a recipe loads its programs
instead of compiling them. ``DLCLI_CACHE_DIR`` moves the folder;
``DLCLI_CACHE_DIR=off`` switches the cache off. The engine's training program
is kept whole in the same folder instead (:mod:`dlcli.engine.executables`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

OFF = ("", "0", "off", "false", "no")
LOWERED = "/jax/core/compile/jaxpr_to_mlir_module_duration"  # once per program, compiled or loaded
CACHE_HIT = "/jax/compilation_cache/cache_hits"
_counts = {"programs": 0, "from_cache": 0, "train": 0}
TRAIN_PROGRAM = "train_block"  # the engine's compiled training function (dlcli.engine.program)


def cache_dir() -> Path | None:
    """The compilation cache folder, or None when the user switched it off."""
    configured = os.environ.get("DLCLI_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in OFF else Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dlcli")) / "xla"


_uncounted = threading.local()  # .on: this thread lowers a function only for its cost, not a program of the run


def _on_duration(event: str, duration: float, fun_name: str = "", **_) -> None:
    if event == LOWERED and not getattr(_uncounted, "on", False):
        _counts["programs"] += 1
        _counts["train"] += TRAIN_PROGRAM in fun_name


def _on_event(event: str, **_) -> None:
    if event == CACHE_HIT:
        _counts["from_cache"] += 1


@contextmanager
def uncounted() -> Iterator[None]:
    """Lowerings in this block are not programs of the run (a cost estimate, a set-up): never compiled, not counted."""
    _uncounted.on = True
    try:
        yield
    finally:
        _uncounted.on = False


def set_up_lowering() -> None:
    """Lower a trivial program once (uncounted, never compiled): the first lowering of a process imports MLIR's
    dialects and builds its context, about 0.1 s that a process waiting for its data can spend early."""
    import numpy as np

    if not getattr(set_up_lowering, "done", False):
        set_up_lowering.done = True
        with uncounted():
            jax.jit(lambda x: x + 1).lower(np.float32(0))


def flops_of(lowered: Any) -> float:
    """XLA's estimate of a lowered program's arithmetic (a loop's body counted once)."""
    analysis = lowered.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float((analysis or {}).get("flops", 0.0))


def count_loaded(fun_name: str) -> None:
    """Count a program loaded whole from :mod:`dlcli.engine.executables` (never traced nor lowered)."""
    _counts["programs"] += 1
    _counts["from_cache"] += 1
    _counts["train"] += TRAIN_PROGRAM in fun_name


def configure() -> None:
    """Point JAX at the persistent cache (every program, however quick to compile) and start counting."""
    if getattr(configure, "done", False):
        return
    configure.done = True
    folder = cache_dir()
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = None  # an unwritable cache only costs speed
    if folder is not None:
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.monitoring.register_event_duration_secs_listener(_on_duration)
    jax.monitoring.register_event_listener(_on_event)


@contextmanager
def fresh() -> Iterator[None]:
    """Compile without JAX's persistent cache: on XLA:CPU an executable that cache loaded serializes without
    some of its kernels, so one that :mod:`dlcli.engine.executables` keeps must be compiled here."""
    from jax.experimental.compilation_cache.compilation_cache import reset_cache

    if not jax.config.jax_enable_compilation_cache:
        yield
        return
    reset_cache()
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
        reset_cache()


# Compile fast, for programs that do little arithmetic: no backend optimisation, and XLA:CPU's classic
# emitters instead of its fusion emitters, which took 4x longer to compile the training block of mlp-xor
# (2.3 s -> 0.5 s measured; other backends ignore the option).
QUICK = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
# Optimised, but with the emitters that compile faster, and LLVM's first level of optimisation rather than its
# second: every bundled "short run" recipe compiled 0.1-0.8 s faster (HIGGS 0.72 -> 0.56 s, long-memory-lstm
# 1.99 -> 1.47 s) and trained as fast, digits-augment excepted (1.32 -> 1.52 s, against 0.5 s of compile saved).
SHORT = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}


# How a program is compiled, by the arithmetic of all its calls (XLA's estimate, in flops): a training
# program's is the whole run's, an evaluation's one pass over its split. Below the first bound compile fast
# rather than optimise (trivial runs: mlp-xor 2.5e5, iris-mlp 1.6e7; kept low on purpose, since without
# backend optimisation a deep narrow MLP ran its epochs several times slower). Below the second, optimise
# with XLA:CPU's classic emitters: quicker to compile (digits-mlp 1.5 s -> 0.6 s, the HIGGS MLP 2.4 s ->
# 1.8 s) though up to 1.4x slower to run wide layers (the HIGGS MLP), which costs less than the compile time
# saved for runs this short (HIGGS, 1 epoch of 800k events: 1.0e10; evaluating its 800k training events,
# 4.6e9, took 0.35 s to compile and run against 0.56 s optimised). Above, the fusion emitters.
COMPILE_TIERS = ((4e7, "quick start", QUICK), (3e10, "short run", SHORT), (math.inf, "speed", None))


def compile_tier(flops: float) -> tuple[str, dict | None]:
    """(the tier's name, XLA options) of a program whose calls all come to ``flops``: see :data:`COMPILE_TIERS`."""
    return next((name, options) for bound, name, options in COMPILE_TIERS if flops < bound)


@dataclass
class Compilations:
    """Programs compiled (or loaded from the cache) since :meth:`start`; ``train``: the training program's."""

    programs: int = 0
    from_cache: int = 0
    train: int = 0

    @classmethod
    def start(cls) -> "Compilations":
        return cls(**_counts)

    def since(self) -> dict[str, int]:
        return {key: _counts[key] - getattr(self, key) for key in _counts}
