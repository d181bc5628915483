"""Looking back over run directories: find them, and read each one's files without trusting them.

``dlcli train`` writes ``runs/<recipe>/<timestamp>/`` and ``compare-activations``
``runs/compare/<recipe>/<timestamp>/``; both hold ``recipe.toml``,
``metrics.jsonl`` and, once they end, ``summary.json``. A folder found here
may be half-written (a run still going, or killed), torn, or not dlcli's at
all: every such case becomes an :class:`Entry` that says what is wrong,
never an exception. Only the standard library is used: listing runs imports
neither jax nor numpy.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dlcli.errors import DlcliError, did_you_mean

RUN_FILES = ("recipe.toml", "summary.json", "metrics.jsonl")
STAMP_FORMAT = "%Y%m%d-%H%M%S"  # the folder name dlcli.checkpoint.create_run_dir gives a run


@dataclass
class Entry:
    """One folder under the runs folder, as far as its files tell.

    ``ended`` is the summary's word (completed, early_stopped, diverged,
    interrupted), ``running`` while a live process holds the run's lock,
    ``killed`` when a run stopped without writing its summary, or
    ``incomplete: <why>`` for a folder whose files cannot be read as a run.
    """

    path: Path
    kind: str  # "run" or "comparison"
    recipe: str | None = None
    started: datetime | None = None
    ended: str = "incomplete"
    epochs: int | None = None
    best_epoch: int | None = None
    split: str | None = None  # where the headline numbers come from: test, val, train
    headline: dict[str, float] = field(default_factory=dict)  # e.g. {"accuracy": 0.97, "auc": 0.99}
    winner: str | None = None  # a comparison's best variant, whose seed mean the headline is
    wall_time_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(path=str(self.path), started=self.started.isoformat(timespec="seconds") if self.started else None)
        return data


@dataclass
class Metrics:
    """metrics.jsonl's records, and what was wrong with its lines, if anything."""

    records: list[dict[str, Any]]
    problem: str | None = None


def check_folder(root: Path) -> None:
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DlcliError(f"Runs folder '{root}' {what}. `dlcli train` writes runs under ./runs by default (or "
                         "under its --out folder); run this where that folder is, or name it: dlcli runs DIR.")


def find_entries(root: Path) -> list[Entry]:
    """Every run and comparison folder under ``root`` (at any depth), newest first.

    A folder holding any of recipe.toml, summary.json or metrics.jsonl is an
    entry (its sub-folders, such as checkpoints/ and plots/, are not
    searched); so is a leaf folder holding none of them, as not a run.
    """
    check_folder(root)
    entries = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        here = Path(folder)
        if any(name in files for name in RUN_FILES):
            subfolders.clear()
            entries.append(read_entry(here))
        elif not subfolders and here != root:
            entries.append(Entry(here, "run", started=stamp_of(here),
                                 ended="incomplete: no recipe.toml, summary.json or metrics.jsonl"))
    return newest_first(entries)


def newest_first(entries: list[Entry]) -> list[Entry]:
    """By the start in the folder's name; runs started within the same second by when their recipe.toml was
    written (folder names only have seconds)."""
    def written(entry: Entry) -> float:
        try:
            return (entry.path / "recipe.toml").stat().st_mtime
        except OSError:
            return 0.0

    return sorted(entries, key=lambda e: (e.started is not None, e.started or datetime.min, written(e), str(e.path)),
                  reverse=True)


def read_entry(path: Path) -> Entry:
    """What ``path``'s files say about the run or comparison there; problems become notes, never exceptions."""
    summary, summary_problem = read_summary(path)
    metrics = read_metrics(path / "metrics.jsonl")
    recipe, recipe_problem = read_recipe(path / "recipe.toml")
    kind = "comparison" if is_comparison(summary, metrics.records) else "run"
    entry = Entry(path, kind, recipe=(summary or {}).get("recipe") or (recipe or {}).get("name"),
                  started=stamp_of(path) or modified(path / "recipe.toml"))
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    entry.notes += [problem for problem in (summary_problem, metrics.problem, recipe_problem) if problem]
    if summary is not None:
        (describe_comparison if kind == "comparison" else describe_run)(entry, summary)
        if entry.ended == "interrupted" and holds_live_lock(path):
            entry.ended = "running"  # resumed: the summary of the interruption stays until the run ends
    else:
        entry.ended = unfinished(path, kind, missing, summary_problem)
        entry.epochs = epochs_recorded(metrics.records) if metrics.records else None
    if "recipe.toml" in missing and not entry.ended.startswith("incomplete"):
        entry.notes.append("recipe.toml missing")
    return entry


def unfinished(path: Path, kind: str, missing: list[str], summary_problem: str | None) -> str:
    """The state of a folder without a readable summary.json."""
    if summary_problem:
        return f"incomplete: {summary_problem}"
    if holds_live_lock(path):
        return "running"
    if "metrics.jsonl" in missing or "recipe.toml" in missing:
        return "incomplete: " + " and ".join(missing) + " missing"
    if kind == "comparison":
        return "running or killed"  # a comparison holds no lock to tell them apart
    return "killed"


def describe_run(entry: Entry, summary: dict[str, Any]) -> None:
    entry.ended = str(summary.get("ended", "incomplete: summary.json has no 'ended'"))
    entry.epochs = summary.get("epochs_run")
    entry.best_epoch = summary.get("best_epoch")
    entry.wall_time_s = summary.get("wall_time_s")
    final = summary.get("final")
    if isinstance(final, dict):
        entry.split = summary.get("evaluated_on")
        entry.headline = headline(summary.get("task"), final)


def headline(task: str | None, final: dict[str, Any]) -> dict[str, float]:
    """The numbers a result is judged by: accuracy and AUC, R² and MSE, else the loss."""
    from dlcli.tasks import HEADLINE_METRICS  # no numpy, no jax: listing stays a file reader

    keys = [k for k in HEADLINE_METRICS.get(task or "", ()) if is_number(final.get(k))] or ["loss"]
    return {k: final[k] for k in keys if is_number(final.get(k))}


def describe_comparison(entry: Entry, summary: dict[str, Any]) -> None:
    """A finished comparison: its winner's mean primary number over seeds."""
    entry.ended = "completed"
    entry.wall_time_s = summary.get("wall_time_s")
    members = [m for run in summary.get("runs", []) for m in run.get("members", [])]
    entry.epochs = max((m.get("epochs_run") or 0 for m in members), default=None)
    primary, rows = summary.get("primary"), comparison_rows(summary)
    ranking = summary.get("ranking") or []
    if primary and ranking and ranking[0] in rows:
        mean = rows[ranking[0]].get("final", {}).get(primary, {}).get("mean")
        if is_number(mean):
            entry.split = "val" if primary.startswith("val_") else "train"
            entry.headline, entry.winner = {primary.removeprefix("val_"): mean}, ranking[0]


def comparison_rows(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A comparison summary's per-variant rows by label (``activations`` in compare-activations)."""
    rows = summary.get("activations") or summary.get("variants") or []
    return {str(row.get("activation", row.get("variant", row.get("label")))): row for row in rows}


def is_comparison(summary: dict[str, Any] | None, records: list[dict[str, Any]]) -> bool:
    if summary is not None:
        return "ranking" in summary or "runs" in summary
    return bool(records) and "seed" in records[0]


def read_summary(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, problem): None and why when summary.json is missing, torn or not a JSON object."""
    file = path / "summary.json"
    if not file.is_file():
        return None, None
    try:
        summary = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, "summary.json is not valid JSON (torn or not dlcli's)"
    except OSError as error:
        return None, f"summary.json cannot be read ({error.strerror})"
    if not isinstance(summary, dict):
        return None, "summary.json is not a JSON object"
    return summary, None


def read_metrics(file: Path) -> Metrics:
    """The epoch records of a metrics.jsonl; a torn last line (a run writing or killed) is left out."""
    try:
        lines = file.read_text().splitlines()
    except FileNotFoundError:
        return Metrics([])
    except (OSError, UnicodeDecodeError) as error:
        return Metrics([], f"metrics.jsonl cannot be read ({error})")
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if number == len(lines):
                return Metrics(records, "metrics.jsonl: last line torn (left out)")
            return Metrics(records, f"metrics.jsonl: line {number} is not a JSON record (read up to it)")
        records.append(record)
    return Metrics(records)


def read_recipe(file: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the resolved recipe as a table, problem)."""
    try:
        return tomllib.loads(file.read_text()), None
    except FileNotFoundError:
        return None, None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None, "recipe.toml is not valid TOML"
    except OSError as error:
        return None, f"recipe.toml cannot be read ({error.strerror})"


def epochs_recorded(records: list[dict[str, Any]]) -> int:
    return max((r["epoch"] for r in records if isinstance(r.get("epoch"), int)), default=0)


def holds_live_lock(path: Path) -> bool:
    """Whether a live process holds the run's lock (see :func:`dlcli.checkpoint.run_lock`)."""
    try:
        owner = int((path / ".lock").read_text() or "0")
        os.kill(owner, 0)
    except (OSError, ValueError):
        return False
    return owner > 0


def stamp_of(path: Path) -> datetime | None:
    """The start time in a run folder's name (``20250101-120000``, maybe with a ``-1`` suffix)."""
    try:
        return datetime.strptime(path.name[:15], STAMP_FORMAT)
    except ValueError:
        return None


def modified(file: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(file.stat().st_mtime)
    except OSError:
        return None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def select(entries: list[Entry], recipe: str | None, limit: int | None) -> list[Entry]:
    """Entries of recipes matching ``recipe`` (a name or a glob such as ``higgs*``), the newest ``limit``."""
    from fnmatch import fnmatchcase

    if recipe is not None:
        names = sorted({e.recipe for e in entries if e.recipe})
        entries = [e for e in entries if e.recipe and fnmatchcase(e.recipe, recipe)]
        if not entries and names:
            raise DlcliError(f"--recipe '{recipe}': no run of that recipe here.{did_you_mean(recipe, names)} "
                             f"Recipes with runs: {', '.join(names)} (a glob such as 'higgs*' also works).")
    return entries if limit is None else entries[:limit]
