"""Freed memory handed back to the system after the phases that peak: a pass over the data, a compilation.

Arrow's pool keeps the pages of freed tables for reuse until told, and the
C heap (glibc's malloc) keeps freed pages in its arenas, those of threads
included, until trimmed. A run that read its data or compiled its program
holds on to that memory to its end, where peak memory is what decides
whether a data set fits: at 10M HIGGS events, two processes each held about
0.2 GB this way (measured, BENCHMARKS.md).
"""

from __future__ import annotations

import ctypes
import sys


def release_freed_memory() -> None:
    """Arrow's unused pool memory and the C heap's free pages back to the system (each where it applies)."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc only: elsewhere the name is missing and nothing is trimmed
    except (OSError, AttributeError):
        pass
