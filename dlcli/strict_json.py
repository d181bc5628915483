"""Strict JSON text, what ``jq`` and every JSON parser read: no NaN, no Infinity.

Free of jax and numpy, so that commands that only read files print JSON without them.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float (a diverged loss, say) replaced by None, at any depth."""
    numpy = sys.modules.get("numpy")  # a numpy float exists only once numpy is imported
    if isinstance(value, float) or (numpy is not None and isinstance(value, numpy.floating)):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def json_text(data: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Indented strict JSON; ``default`` turns other types (arrays) into JSON values."""
    return json.dumps(finite_or_null(data), indent=2, default=default, allow_nan=False)
