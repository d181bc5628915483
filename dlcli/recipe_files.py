"""Recipe files: where the bundled ones live and which file a recipe name means.

Kept apart from :mod:`dlcli.recipe` (the recipe schema, which imports pydantic), so that
``dlcli recipes`` lists and prints the bundled recipes without loading the schema.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dlcli.errors import DlcliError, choices_text, did_you_mean


def bundled_dir() -> Path:
    """Where bundled recipes live: inside the installed package, or the source tree."""
    packaged = Path(str(resources.files("dlcli"))) / "recipes"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "recipes"


def bundled_names() -> list[str]:
    return sorted(p.stem for p in bundled_dir().glob("*.toml"))


def find_recipe(ref: str) -> tuple[Path, str]:
    """A recipe file from a path or a bundled name; returns (path, label)."""
    path = Path(ref).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise DlcliError(f"Recipe file '{ref}' does not exist. Give a path to a .toml file or a bundled name "
                             f"(dlcli recipes lists them).")
        return path, str(path)
    bundled = bundled_dir() / f"{ref}.toml"
    if bundled.is_file():
        return bundled, f"bundled:{ref}"
    raise DlcliError(
        f"'{ref}' is neither a recipe file nor a bundled recipe.{did_you_mean(ref, bundled_names())}"
        f" Bundled recipes: {choices_text(bundled_names())}."
    )
