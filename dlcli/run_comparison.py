"""``dlcli runs compare``: finished runs side by side, from their files alone.

Each run gives one set of curves (its metrics.jsonl) and one row of results
(its summary.json); a comparison folder gives one of each per variant, its
seeds averaged. The resolved recipes are compared key by key, and only the
keys whose values differ are reported, by their dotted paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.dotted import flatten
from dlcli.errors import DlcliError
from dlcli.history import Entry, comparison_rows, is_number, read_entry, read_metrics, read_recipe, read_summary

FIGURE_NAME = "runs-compare.png"
NOT_RESULTS = {"epoch", "examples", "learning_rate", "time_s", "samples_per_s"}
RESULT_ORDER = ("loss", "accuracy", "auc", "macro_f1", "r2", "mse", "mae")


@dataclass
class Row:
    """One line of the results table: a run, or one variant of a comparison (its seeds' mean)."""

    label: str
    ended: str
    epochs: int | None
    best_epoch: int | None
    split: str | None
    results: dict[str, float]
    wall_time_s: float | None


@dataclass
class Curves:
    """The epoch records one line of the figure draws (train and validation of every metric)."""

    label: str
    history: list[dict[str, Any]]


@dataclass
class RunsComparison:
    rows: list[Row]
    curves: list[Curves]
    differences: dict[str, dict[str, Any]]  # dotted key -> {label: value (None where a recipe lacks the key)}
    figure: Path | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"figure": str(self.figure) if self.figure else None, "notes": self.notes,
                "runs": [vars(row) for row in self.rows], "recipe_differences": self.differences}


def compare_runs(paths: list[Path], figure: Path | None = None) -> RunsComparison:
    """Results, curves and recipe differences of ``paths``; the overlaid curves written to ``figure``.

    Args:
      paths: run directories (``dlcli train``) or comparison folders (``compare-activations``).
      figure: a .png file or a folder; by default ``plots/runs-compare.png`` under the first path.
    """
    entries = [opened(path) for path in paths]
    labels = short_labels(entries)
    if len(entries) < 2 and entries[0].kind == "run":
        raise DlcliError(f"dlcli runs compare needs two runs or more (or one comparison folder); got only "
                         f"'{paths[0]}'. `dlcli runs` lists the runs to choose from.")
    rows, curves, notes = [], [], []
    for entry, label in zip(entries, labels):
        history = read_metrics(entry.path / "metrics.jsonl")
        notes += [f"{label}: {note}" for note in entry.notes]
        if entry.kind == "comparison":
            members = member_histories(history.records)
            rows += comparison_member_rows(entry, label, members)
            curves += [Curves(f"{label}: {name} (mean of {len(seeds)} seeds)", mean_by_epoch(seeds))
                       for name, seeds in members.items()]
        else:
            rows.append(Row(label, entry.ended, entry.epochs, entry.best_epoch, entry.split, run_results(entry.path),
                            entry.wall_time_s))
            curves.append(Curves(label, history.records))
    if any(entry.kind == "comparison" for entry in entries):
        notes.append("a comparison folder's recipe.toml is the recipe all its variants share, before each variant's "
                     "change (model.activation for compare-activations)")
    comparison = RunsComparison(rows, curves, recipe_differences(entries, labels), notes=notes)
    comparison.figure = write_figure(curves, figure_path(figure, entries[0].path))
    return comparison


def opened(path: Path) -> Entry:
    if not path.is_dir():
        raise DlcliError(f"'{path}' is not a folder. Give run directories as `dlcli runs` lists them "
                         "(runs/<recipe>/<timestamp>).")
    if not (path / "metrics.jsonl").is_file():
        raise DlcliError(f"'{path}' is not a run directory: metrics.jsonl is missing, so there are no curves to "
                         "compare. Give folders that `dlcli train` or `dlcli compare-activations` wrote "
                         "(`dlcli runs` lists them).")
    return read_entry(path)


def short_labels(entries: list[Entry]) -> list[str]:
    """``<recipe folder>/<timestamp>`` for each entry, or the whole path where two would read the same."""
    labels = [f"{e.path.parent.name}/{e.path.name}" for e in entries]
    if len(set(labels)) < len(labels):
        labels = [str(e.path) for e in entries]
    return labels


def run_results(path: Path) -> dict[str, float]:
    """The scalar numbers of a run's final evaluation (summary.json ``final``)."""
    summary, _ = read_summary(path)
    final = (summary or {}).get("final")
    return ordered({k: v for k, v in final.items() if is_number(v) and k not in NOT_RESULTS}) \
        if isinstance(final, dict) else {}


def ordered(results: dict[str, float]) -> dict[str, float]:
    rank = {key: i for i, key in enumerate(RESULT_ORDER)}
    return dict(sorted(results.items(), key=lambda item: rank.get(item[0], len(rank))))


def member_histories(records: list[dict[str, Any]]) -> dict[str, list[list[dict[str, Any]]]]:
    """A comparison's records split by variant (its text tags, e.g. the activation), then by seed."""
    members: dict[str, dict[Any, list[dict[str, Any]]]] = {}
    for record in records:
        name = " ".join(str(v) for k, v in record.items() if isinstance(v, (str, dict))) or "all"
        members.setdefault(name, {}).setdefault(record.get("seed"), []).append(record)
    return {name: list(seeds.values()) for name, seeds in members.items()}


def mean_by_epoch(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One record per epoch: the mean over seeds of each number some seed recorded."""
    by_epoch: dict[int, dict[str, list[float]]] = {}
    for history in histories:
        for record in history:
            sums = by_epoch.setdefault(record.get("epoch", 0), {})
            for key, value in record.items():
                if is_number(value) and key not in ("epoch", "seed"):
                    sums.setdefault(key, []).append(value)
    return [{"epoch": epoch, **{k: sum(v) / len(v) for k, v in values.items()}}
            for epoch, values in sorted(by_epoch.items())]


def comparison_member_rows(entry: Entry, label: str, members: dict[str, list]) -> list[Row]:
    """One row per variant: the summary's mean over seeds of its validation numbers (else its training ones)."""
    summary, _ = read_summary(entry.path)
    rows_by_name = comparison_rows(summary or {})
    out = []
    for name, seeds in members.items():
        final = {k: v.get("mean") for k, v in rows_by_name.get(name, {}).get("final", {}).items()
                 if isinstance(v, dict) and is_number(v.get("mean"))}
        validation = {k.removeprefix("val_"): v for k, v in final.items() if k.startswith("val_")}
        split = f"{'val' if validation else 'train'}, mean of {len(seeds)} seeds"
        results = ordered({k: v for k, v in (validation or final).items() if k not in NOT_RESULTS})
        out.append(Row(f"{label}: {name}", entry.ended, max((len(h) for h in seeds), default=None), None, split,
                       results, rows_by_name.get(name, {}).get("wall_time_s")))
    return out


def recipe_differences(entries: list[Entry], labels: list[str]) -> dict[str, dict[str, Any]]:
    """The dotted recipe keys whose values differ between the entries' recipe.toml files."""
    tables = {}
    for entry, label in zip(entries, labels):
        recipe, _ = read_recipe(entry.path / "recipe.toml")
        if recipe is not None:
            tables[label] = flatten(recipe)
    keys = sorted({key for table in tables.values() for key in table})
    differences = {}
    for key in keys:
        values = {label: table.get(key) for label, table in tables.items()}
        if len({repr(v) for v in values.values()}) > 1:
            differences[key] = values
    return differences


def figure_path(figure: Path | None, first: Path) -> Path:
    if figure is None:
        return first / "plots" / FIGURE_NAME
    if figure.is_dir():
        return figure / FIGURE_NAME
    if figure.suffix.lower() != ".png":
        raise DlcliError(f"--out '{figure}': give a .png file name or an existing folder.")
    if not figure.parent.is_dir():
        raise DlcliError(f"--out '{figure}': the folder '{figure.parent}' does not exist. Create it or choose "
                         "another path.")
    return figure


def write_figure(curves: list[Curves], path: Path) -> Path:
    from dlcli.report.overlay import plot_overlay

    try:
        return plot_overlay([(c.label, c.history) for c in curves], path)
    except OSError as error:
        raise DlcliError(f"Cannot write the figure '{path}': {error.strerror}. Choose another place with "
                         "--out FILE.png.") from None
