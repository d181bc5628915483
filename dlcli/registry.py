"""Registries: plug-ins chosen by the exact name a recipe uses.

A registry maps a recipe name (``"relu"``, ``"adam"``, ``"mlp"``) to a
builder function. Entries are registered explicitly: with the decorator in
the module that owns the registry, or listed there as ``"module:function"``
strings that are imported on first use. Listed entries keep the names (and
did-you-mean messages) available without importing the plug-in, and the
plug-in module never imports its registry, so no import cycle can form. Builders take their settings as keyword-only arguments
with type annotations and defaults; :meth:`Registry.validate` turns a recipe
section into those keyword arguments, rejecting unknown keys and wrong types
with a message that names the key and lists the valid ones.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from dlcli.errors import DlcliError, choices_text, did_you_mean


class Registry:
    """Name -> builder, with duplicate registration as an error."""

    def __init__(self, what: str, listed: Mapping[str, str] | None = None):
        """A registry of ``what`` (``"model"``), with ``listed`` entries ``name -> "module:function"``."""
        self.what = what
        self._entries: dict[str, Callable[..., Any] | str] = dict(listed or {})
        self._schemas: dict[str, type[pydantic.BaseModel]] = {}
        self._traits: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **traits: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated builder as ``name``, with ``traits`` other modules may ask about."""
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.what} '{name}' is registered twice")
            self._entries[name] = fn
            self._traits[name] = traits
            return fn

        return decorator

    def trait(self, name: str, key: str, default: Any = None) -> Any:
        """What entry ``name`` declared as ``key`` when it registered (``default`` if nothing)."""
        return self._traits.get(name, {}).get(key, default)

    @property
    def plural(self) -> str:
        return self.what + ("es" if self.what.endswith("s") else "s")  # losses, models

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, *, where: str = "") -> Callable[..., Any]:
        """The builder registered as ``name``; an unknown name is the user's mistake."""
        if name not in self._entries:
            prefix = f"{where}: " if where else ""
            raise DlcliError(
                f"{prefix}unknown {self.what} '{name}'.{did_you_mean(name, self._entries)}"
                f" Valid {self.plural}: {choices_text(self._entries)}."
            )
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry

    def check_name(self, name: str, *, where: str = "") -> None:
        """Raise the unknown-name error for ``name`` without importing its plug-in."""
        if name not in self._entries:
            self.get(name, where=where)

    def options(self, name: str) -> dict[str, Any]:
        """The settings ``name`` accepts, with their defaults (``...`` = required)."""
        return {k: f.default if not f.is_required() else ... for k, f in self.schema(name).model_fields.items()}

    def schema(self, name: str) -> type[pydantic.BaseModel]:
        """A frozen pydantic model of the builder's keyword-only settings."""
        if name not in self._schemas:
            fn = self.get(name)
            hints = typing.get_type_hints(fn)
            fields: dict[str, Any] = {}
            for param in inspect.signature(fn).parameters.values():
                if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                    continue
                default = ... if param.default is inspect.Parameter.empty else param.default
                fields[param.name] = (hints.get(param.name, Any), default)
            config = pydantic.ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)
            self._schemas[name] = pydantic.create_model(f"{self.what}:{name}", __config__=config, **fields)
        return self._schemas[name]

    def validate(self, name: str, settings: Mapping[str, Any], *, where: str) -> dict[str, Any]:
        """Check ``settings`` against ``name``'s signature; return clean keyword arguments.

        Args:
          name: the registry name chosen in the recipe.
          settings: the other keys of the recipe section.
          where: where the section lives, e.g. ``"recipe.toml [model]"``.
        """
        schema = self.schema(name)
        try:
            return schema.model_validate(dict(settings)).model_dump()
        except pydantic.ValidationError as error:
            raise DlcliError(describe_validation_error(error, where=where, valid=schema.model_fields)) from None

    def build(self, name: str, settings: Mapping[str, Any], *args: Any, where: str = "", **runtime: Any) -> Any:
        """Validate ``settings`` and call the builder with them and the runtime arguments."""
        return self.get(name, where=where)(*args, **self.validate(name, settings, where=where), **runtime)


def describe_validation_error(error: pydantic.ValidationError, *, where: str, valid: Mapping[str, Any]) -> str:
    """One paragraph from pydantic's errors: the key path, the bad value, the fix."""
    problems = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            key = str(item["loc"][-1])
            problems.append(
                f"unknown key '{path}'.{did_you_mean(key, valid)} Valid keys here: {choices_text(valid) or '(none)'}"
            )
        elif item["type"] == "missing":
            problems.append(f"missing required key '{path}'")
        else:
            problems.append(f"key '{path}' = {item.get('input')!r}: {item['msg']}")
    return f"{where}: " + "; ".join(problems) + "."
