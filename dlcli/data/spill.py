"""Held-out rows kept on disk: a raw float32 file, read back a fixed-size chunk at a time.

A streamed data set's validation rows are a fifth of it (6M rows of HIGGS,
0.67 GB at 30M events): more than the rest of a streamed run holds. The fit
pass writes them here as it meets them; every epoch's validation, and the
final report, read them back :data:`CHUNK_ROWS` rows at a time into one
reused buffer. The file lives in a temporary folder that is removed when the
rows are closed, garbage collected, or the process exits (Ctrl-C included).
Reads and writes go through the page cache, which the kernel may drop, not
through the process's own memory.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from dlcli.errors import DlcliError

# Rows read back at once (7 MB of HIGGS): a multiple of the evaluation batch (4096 rows), so that every
# batch the model sees has the shape of a resident split's batches and gives the same numbers.
CHUNK_ROWS = 1 << 16


class SpilledRows:
    """A (rows, width) float32 matrix in a file; ``x[a:b]`` reads rows, :meth:`chunk` a padded chunk.

    Args:
      rows, width: the matrix's shape, known from the footers before any row is read.
      folder: where the temporary folder goes (default: the system's, ``TMPDIR``).
      chunk_rows: the rows of one :meth:`chunk`.
    """

    def __init__(self, rows: int, width: int, folder: str | Path | None = None, chunk_rows: int | None = None):
        self.shape, self.dtype = (rows, width), np.dtype(np.float32)
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self._fd = -1
        try:
            self._folder = tempfile.TemporaryDirectory(prefix="dlcli-held-out-", dir=folder)  # removed at exit too
        except OSError as error:
            raise self._no_room(error) from None
        self.path = Path(self._folder.name) / "rows.f32"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, rows * width * 4)
        self._buffer = np.zeros((self.chunk_rows, width), np.float32)
        self._lock = threading.Lock()  # the buffer is shared by whoever reads a chunk

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return 2

    @property
    def chunks(self) -> int:
        return max(1, math.ceil(len(self) / self.chunk_rows))

    def write(self, at: int, rows: np.ndarray) -> None:
        """Rows ``at, at + 1, ...`` become ``rows`` (n, width) float32."""
        data = np.ascontiguousarray(rows, np.float32)
        try:
            os.pwrite(self._fd, memoryview(data).cast("B"), at * self.shape[1] * 4)
        except OSError as error:
            raise self._no_room(error) from None

    def _no_room(self, error: OSError) -> DlcliError:
        gb = self.shape[0] * self.shape[1] * 4 / (1 << 30)
        return DlcliError(f"A streamed run keeps its held-out rows ({gb:.2f} GB as float32) in a temporary folder, "
                          f"and it could not write there ({tempfile.gettempdir()}: {error.strerror or error}). Set "
                          "TMPDIR to a folder with room, or lower data.validation_split and data.test_split.")

    def read_into(self, out: np.ndarray, start: int) -> None:
        """``out`` (n, width) becomes rows ``start .. start + n`` (zeros past the last row)."""
        count = max(0, min(len(out), len(self) - start))
        if count:
            done = os.preadv(self._fd, [memoryview(out[:count]).cast("B")], start * self.shape[1] * 4)
            if done != count * self.shape[1] * 4:
                raise OSError(f"{self.path}: read {done} bytes of {count * self.shape[1] * 4}")
        out[count:] = 0

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise IndexError("spilled rows are read in contiguous slices")
        out = np.empty((max(0, stop - start), self.shape[1]), np.float32)
        self.read_into(out, start)
        return out

    def chunk(self, c: int) -> np.ndarray:
        """Chunk ``c`` (chunk_rows, width), zero-padded, in the reused buffer (valid until the next chunk:
        a JAX callback copies what it returns into the program's own buffer)."""
        with self._lock:
            self.read_into(self._buffer, int(c) * self.chunk_rows)
            return self._buffer

    def standardize(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Rewrite every row as ``(x - mean) / std`` in float32: the arithmetic of a resident split."""
        buffer = np.empty((self.chunk_rows, self.shape[1]), np.float32)
        for start in range(0, len(self), self.chunk_rows):
            part = buffer[:min(self.chunk_rows, len(self) - start)]
            self.read_into(part, start)
            part -= np.asarray(mean, np.float32)
            part /= np.asarray(std, np.float32)
            self.write(start, part)

    def close(self) -> None:
        """Remove the file (a compiled program may still refer to these rows: it keeps no buffer of theirs)."""
        self._buffer = np.zeros((0, self.shape[1]), np.float32)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._folder.cleanup()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit the modules it needs may be gone; the folder's finalizer remains
            pass
