"""A run's data, read on a second thread while the first imports jax.

Importing jax, flax and optax takes about a second of one core, and reading
Parquet or CSV (pyarrow) and preprocessing (numpy) release the GIL for most
of their work: a single-process ``dlcli train`` starts reading as soon as its
recipe is sound, and the run takes the data when it needs them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the data package imports pyarrow: the thread imports it, not the caller
    from dlcli.data.splits import Prepared
    from dlcli.recipe import LoadedRecipe


class ReadAhead:
    """``load_data`` of a recipe, started now on a daemon thread; :meth:`result` waits for it."""

    def __init__(self, loaded: "LoadedRecipe"):
        self._prepared: "Prepared | None" = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(loaded,), name="dlcli-read-ahead", daemon=True)
        self._thread.start()

    def _read(self, loaded: "LoadedRecipe") -> None:
        try:
            from dlcli.data import load_data

            recipe = loaded.recipe
            self._prepared = load_data(recipe.data, recipe.seed, loaded.resolve_path, task=recipe.task)
        except BaseException as error:  # a mistake in the data is the run's to report, on its own thread
            self._error = error

    def result(self) -> "Prepared":
        """The prepared data, or what reading them raised (a DlcliError naming the file or column)."""
        if self._thread.is_alive():  # still reading: set up what a first compilation needs meanwhile
            from dlcli.engine.compilation import set_up_lowering

            set_up_lowering()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._prepared
