"""Recipes: TOML in, one frozen, validated object out.

A recipe is read once, at the boundary: the TOML file (or a bundled name),
then ``--set KEY=VALUE`` overrides, then pydantic validation with
``extra="forbid"``. Sections whose keys depend on a registry name
(``[model]``, ``[loss]``, ``[optimizer]``, ``[data.options]``) are checked
against the chosen builder's own keyword arguments in :mod:`dlcli.resolve`.
Every value remembers where it came from (recipe file, ``--set`` or default)
so that ``--dry-run`` can show it.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from dlcli.dotted import flatten
from dlcli.errors import DlcliError
from dlcli.recipe_files import find_recipe
from dlcli.registry import describe_validation_error


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # nan/inf are never settings


class Component(BaseModel):
    """A section chosen by ``kind``; its other keys belong to that registry entry."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    kind: str

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(Section):
    source: str = Field(description="a bundled data set name, or csv | parquet | npz")
    path: str | None = None
    target: str | None = None
    features: list[str] | None = Field(None, min_length=1)
    column_names: list[str] | None = None
    # The CSV field separator; by default the header line decides (a comma, else ; tab or |).
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    validation_split: float = Field(0.2, ge=0.0, lt=1.0)
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    val_path: str | None = None
    test_path: str | None = None
    standardize: bool = False
    offsets: dict[str, float] = {}
    scales: dict[str, float] = {}
    label_map: dict[str, int] | None = None
    one_hot: list[str] = []
    missing: Literal["error", "drop", "mean", "median"] = "error"
    limit: int | None = Field(None, gt=0)
    # Stream the training rows from disk instead of holding them in memory: "auto" streams only
    # what does not fit memory_gb (default: half of this machine's memory); see dlcli.data.feed.
    stream: Literal["auto", True, False] = "auto"
    memory_gb: float | None = Field(None, gt=0.0)
    shuffle_buffer: int = Field(1 << 20, ge=1)  # rows mixed together when streaming
    options: dict[str, Any] = {}


class EarlyStoppingConfig(Section):
    monitor: str = "val_loss"
    mode: Literal["min", "max", "auto"] = "auto"
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0, ge=0.0)


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, le=1_000_000)
    batch_size: int | Literal["full"] = 32
    # Rows of steps an epoch is cut into between trips to the host; default: whole small
    # epochs, several per trip, and 4 chunks of a large one (see dlcli.engine.driver).
    chunks_per_epoch: int | None = Field(None, ge=1)
    early_stopping: EarlyStoppingConfig | None = None
    # One strength for all weights, or per layer: { "1" = 1e-3 } (layer numbers as `dlcli summary` shows).
    l1: Annotated[float, Field(ge=0.0)] | dict[str, Annotated[float, Field(ge=0.0)]] = 0.0
    l2: Annotated[float, Field(ge=0.0)] | dict[str, Annotated[float, Field(ge=0.0)]] = 0.0
    checkpoint_seconds: float = Field(60.0, gt=0.0)
    augment: dict[str, bool | dict[str, Any]] = {}  # name -> true | { settings }; see dlcli.data.augment

    @pydantic.field_validator("batch_size")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError('batch_size must be 1 (stochastic), a positive integer (mini-batch) or "full"')
        return value


class EvaluateConfig(Section):
    metrics: list[str] = []


class OptimizerConfig(Component):
    kind: str = "adam"
    learning_rate: float = Field(1e-3, gt=0.0)


class CompareConfig(Section):
    """A bundled experiment: ``dlcli compare RECIPE`` varies these keys (``--vary`` replaces them)."""

    vary: dict[str, list[Any]] = Field(default_factory=dict)  # "optimizer.learning_rate" = [1e-3, 1e-2]
    # Named sets of overrides, for variants that differ in several keys at once:
    # variants = [{ name = "L2", "train.l2" = 1e-3 }, { name = "dropout", "model.dropout" = 0.5 }]
    variants: list[dict[str, Any]] = Field(default_factory=list)
    seeds: int = Field(3, ge=1, le=100)


class TuneRange(Section):
    """A number drawn from ``low`` to ``high``: an int range when both bounds are ints, a float range otherwise."""

    low: int | float
    high: int | float
    log: bool = False  # drawn uniformly in log space (learning rates, penalties)
    step: int | float | None = None  # a grid: low, low + step, ... (ints default to 1)

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step if self.step is not None else 1))

    @pydantic.model_validator(mode="after")
    def _not_empty(self) -> "TuneRange":
        if self.low > self.high:
            raise ValueError(f"low = {self.low} is above high = {self.high}: swap them")
        if self.low == self.high:
            raise ValueError(f"the range from {self.low} to {self.high} is empty: widen it, or fix the key "
                             "with --set instead of tuning it")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range must lie above 0, and low = {self.low}: use a small positive low "
                             "such as 1e-6")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ValueError("step must be positive, and a log range takes no step")
        return self


def _distribution(spec: Any) -> TuneRange | list[Any]:
    """One key of ``[tune] space``: a range table or a non-empty list of choices."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError("the list of choices is empty: give at least one value")
        return spec
    if isinstance(spec, dict):
        try:
            return TuneRange.model_validate(spec)
        except pydantic.ValidationError as error:  # one sentence per problem, under this key's own name
            raise ValueError("; ".join(" ".join([*map(str, e["loc"][:1]), e["msg"].removeprefix("Value error, ")])
                                       for e in error.errors())) from None
    raise ValueError("give a range { low = ..., high = ... } (log = true for a log scale) or a list of choices")


class TuneConfig(Section):
    """``dlcli tune RECIPE``: the search space over recipe keys and the objective the study optimizes."""

    # "optimizer.learning_rate" = { low = 1e-4, high = 1e-1, log = true }; "model.hidden" = [[64], [128]]
    space: dict[str, Annotated[Any, pydantic.BeforeValidator(_distribution)]] = Field(min_length=1)
    monitor: str = "val_loss"  # a key of every epoch record; a trial's value is its best epoch's
    mode: Literal["min", "max", "auto"] = "auto"
    trials: int = Field(20, ge=1, le=100_000)  # the default of --trials


class Recipe(Section):
    # The name becomes a folder under --out: no separators, nothing that climbs out of it.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
    description: str = ""
    seed: int = Field(0, ge=0, lt=2**32)  # numpy and jax seeds are unsigned 32-bit
    task: Literal["classification", "regression", "reconstruction", "adversarial"] | None = None
    data: DataConfig
    model: Component
    loss: Component | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    compare: CompareConfig | None = None
    tune: TuneConfig | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _task_of_model(cls, data: Any) -> Any:
        """Autoencoders reconstruct and GANs play adversarial whatever labels the data has."""
        kind = data.get("model", {}).get("kind") if isinstance(data, dict) and isinstance(data.get("model"), dict) else None
        if isinstance(kind, str) and isinstance(data.get("task"), (str, type(None))):  # else: the schema says why
            from dlcli.tasks import implied_task

            task = implied_task(kind, data.get("task"))
            if task is not None:
                data = {**data, "task": task}
        return data


class LoadedRecipe(BaseModel):
    """A validated recipe with where it came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    recipe: Recipe
    source: str  # file path or "bundled:NAME"
    base_dir: Path  # relative data paths resolve against this
    origins: dict[str, str]  # "train.epochs" -> "recipe file" | "--set" | "--seed"

    def resolve_path(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)


def read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DlcliError(f"{label}: the file is not UTF-8 text (byte {error.start} is invalid). "
                         "Save the recipe as UTF-8.") from None
    except OSError as error:
        raise DlcliError(f"{label}: cannot read the recipe ({error.strerror}).") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DlcliError(f"{label}: not valid TOML: {error}. Check the quoting and brackets on that line.") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.learning_rate=0.01"`` -> (["optimizer", "learning_rate"], 0.01).

    The value is parsed as TOML; a bare word that is not valid TOML is taken as
    a string, so ``--set data.source=moons`` works without quotes.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise DlcliError(f"--set '{text}': expected KEY=VALUE with a dotted key, e.g. --set optimizer.learning_rate=0.01.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_override(raw: dict[str, Any], path: list[str], value: Any, text: str) -> None:
    node = raw
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise DlcliError(f"--set '{text}': '{part}' holds a value, not a section, so '{'.'.join(path)}' cannot be set.")
        node = child
    node[path[-1]] = value


def load_recipe(ref: str, overrides: list[str] = (), seed: int | None = None) -> LoadedRecipe:
    """Read, override and validate a recipe.

    Args:
      ref: a ``.toml`` path or a bundled recipe name.
      overrides: ``KEY=VALUE`` strings from ``--set``.
      seed: ``--seed``, which wins over the recipe's own.
    """
    path, label = find_recipe(ref)
    raw = read_toml(path, label)
    origins = {key: "recipe file" for key in flatten(raw)}
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(raw, keys, value, text)
        origins[".".join(keys)] = "--set"
    if seed is not None:
        raw["seed"] = seed
        origins["seed"] = "--seed"
    recipe = validate_recipe(raw, label)
    from dlcli.resolve import check_components  # imports the registries (and jax): not at CLI import time

    check_components(recipe, label)
    base_dir = path.resolve().parent if not label.startswith("bundled:") else Path.cwd()
    return LoadedRecipe(recipe=recipe, source=label, base_dir=base_dir, origins=origins)


def validate_recipe(raw: dict[str, Any], label: str) -> Recipe:
    try:
        return Recipe.model_validate(copy.deepcopy(raw))
    except pydantic.ValidationError as error:
        raise DlcliError(describe_validation_error(error, where=label, valid=_valid_keys(error))) from None


def _valid_keys(error: pydantic.ValidationError) -> list[str]:
    """The keys valid next to the first unknown key, for the did-you-mean."""
    for item in error.errors():
        if item["type"] == "extra_forbidden":
            model: type[BaseModel] = Recipe
            for part in item["loc"][:-1]:
                field = model.model_fields.get(str(part))
                annotation = getattr(field, "annotation", None)
                candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
                model = next((c for c in candidates if issubclass(c, BaseModel)), None)
                if model is None:
                    return []
            return list(model.model_fields)
    return []


def to_toml(recipe: Recipe) -> str:
    """The resolved recipe as TOML text (what a run directory saves)."""
    return dump_toml(recipe.model_dump(exclude_none=True))


def dump_toml(data: dict[str, Any]) -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"{key} = {toml_value(value)}" for key, value in scalars.items()]
    for key, table in tables.items():
        lines += ["", f"[{key}]"] + [f"{_toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """One value as TOML text (inline tables for dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else ("nan" if value != value else
                                                                                   ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else toml_value(key)
