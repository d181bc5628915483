"""Modules imported on first use, so that checking a recipe never loads jax.

The registries of activations, losses and optimizers define their builders
next to their names; the builders need jax and optax only when they run.
``jax = lazy("jax")`` at the top of such a module binds a stand-in that
imports the real module the first time an attribute is read.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name`` until an attribute is needed."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy(name: str) -> ModuleType:
    return LazyModule(name)  # type: ignore[return-value]
