"""Page-aligned float32 matrices: JAX on a CPU uses a 64-byte-aligned NumPy array in place, without a copy.

A split of a large data set is placed on the devices once; on a CPU that
placement copies the array unless its data starts on a 64-byte boundary, so
the matrices the readers fill are allocated that way (fresh pages are).
"""

from __future__ import annotations

import mmap

import numpy as np

ALIGNMENT = 64  # bytes: what JAX on a CPU needs to use an array's memory in place


def zeros_aligned(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of zeros on fresh pages (page-aligned, so 64-byte aligned), every page mapped
    before the rows arrive: first touches of pages at random rows cost three times the writes, and the
    kernel maps them all at once (MAP_POPULATE) faster still than touching them in order."""
    size = int(np.prod(shape)) * 4
    if not hasattr(mmap, "MAP_ANONYMOUS"):  # not a POSIX system: touch the pages in order
        buffer = np.empty(size + ALIGNMENT, np.uint8)
        skip = -buffer.ctypes.data % ALIGNMENT
        matrix = buffer[skip:skip + size].view(np.float32).reshape(shape)
        matrix.fill(0)
        return matrix
    pages = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0))
    return np.frombuffer(pages, np.float32, count=size // 4).reshape(shape)
