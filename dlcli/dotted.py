"""Nested tables as dotted key paths, as ``--set`` and ``--dry-run`` name recipe keys."""

from __future__ import annotations

from typing import Any


def flatten(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"learning_rate": 0.01}}`` -> ``{"optimizer.learning_rate": 0.01}``; an empty table is a value."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out
