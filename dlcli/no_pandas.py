"""Arrow columns to numpy without importing pandas (a third of a second).

pyarrow imports pandas, if it is installed, the first time an array is built
from numpy or a column becomes a numpy array, only to ask whether the object
at hand is a pandas one. dlcli's own processes never hold pandas objects, so
:func:`arrow_without_pandas` lets pyarrow's first look find no pandas: the
conversions are the same, and pandas is not imported. pyarrow still imports
pandas the moment something really needs it (``Table.to_pandas``,
``Table.from_pandas``).

The ``dlcli`` commands call it; library users, whose pandas objects pyarrow
must keep recognising, do not.
"""

from __future__ import annotations

import sys


class _NoPandas:  # a meta path finder (importlib.abc.MetaPathFinder's protocol; that module costs 7 ms to import)
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def arrow_without_pandas() -> None:
    """Let pyarrow's lazy pandas check run once, with pandas out of sight (a no-op once pandas is loaded)."""
    if "pandas" in sys.modules:
        return
    import numpy as np
    import pyarrow as pa

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.array(np.zeros(1, np.float32)).to_numpy()
    finally:
        sys.meta_path.remove(finder)
