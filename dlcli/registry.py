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

import ast
import importlib
import importlib.util
import inspect
import typing
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from dlcli.errors import DlcliError, choices_text, did_you_mean


def annotation(text: str, namespace: dict[str, Any]) -> Any:
    """The type an annotation string names, or ``Any`` when it names something only its module knows."""
    try:
        return eval(text, {"Any": Any, "Literal": typing.Literal, **namespace})  # noqa: S307 (source code of dlcli)
    except Exception:
        return Any


def keyword_settings(fn: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """``name -> (type, default or ...)`` of ``fn``'s keyword-only parameters (its recipe settings)."""
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            default = ... if param.default is inspect.Parameter.empty else param.default
            hint = param.annotation if not isinstance(param.annotation, str) else annotation(
                param.annotation, fn.__globals__)
            fields[param.name] = (Any if hint is inspect.Parameter.empty else hint, default)
    return fields


# Modules whose types builders' settings may name and that import no jax (checked by the import-graph test).
TYPE_MODULES = ("typing", "collections.abc", "dlcli.activations")


def imported_types(tree: ast.Module) -> dict[str, Any]:
    """The names a module's source imports from :data:`TYPE_MODULES` (e.g. ``ActivationSpec``)."""
    namespace: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in TYPE_MODULES:
            module = importlib.import_module(node.module)
            namespace.update({alias.asname or alias.name: getattr(module, alias.name, Any) for alias in node.names})
    return namespace


def keyword_settings_in_source(entry: str) -> dict[str, tuple[Any, Any]]:
    """:func:`keyword_settings` of a ``"module:function"`` entry, read from the module's source, not imported."""
    module, _, name = entry.partition(":")
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    fn = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)
    namespace = imported_types(tree)
    fields: dict[str, Any] = {}
    for arg, default in zip(fn.args.kwonlyargs, fn.args.kw_defaults):
        hint = annotation(ast.unparse(arg.annotation), namespace) if arg.annotation is not None else Any
        fields[arg.arg] = (hint, ... if default is None else ast.literal_eval(default))
    return fields


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
        """A frozen pydantic model of the builder's keyword-only settings.

        A listed entry not imported yet is read from its source, so that a
        recipe's settings are checked without importing the plug-in (and jax).
        """
        if name not in self._schemas:
            self.check_name(name)
            entry = self._entries[name]
            fields = keyword_settings_in_source(entry) if isinstance(entry, str) else keyword_settings(entry)
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
