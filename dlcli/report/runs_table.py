"""Rich tables of past runs: ``dlcli runs`` and ``dlcli runs compare`` (plain text when piped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from dlcli.history import Entry
from dlcli.report.console import make_console

MISSING = "-"
PIPED_WIDTH = 240


def duration(seconds: float | None) -> str:
    """``0.8s``, ``42s``, ``3m05s``, ``2h07m``."""
    if seconds is None:
        return MISSING
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def number(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.3g}"
    return str(value)


def result_cell(entry: Entry) -> str:
    if not entry.headline:
        return MISSING
    text = (f"{entry.split}: " if entry.split else "") + "  ".join(f"{k} {number(v)}" for k, v in entry.headline.items())
    return text + (f" ({entry.winner} best)" if entry.winner else "")


def table_console():
    """A console whose piped output keeps one line per row (for grep); a terminal wraps to its width."""
    console = make_console()
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


def print_entries(entries: list[Entry], root: Path, shown_of: int) -> None:
    """The runs table, newest first; a folder that is not a complete run says why in its ``ended`` cell."""
    console = table_console()
    if not entries:
        console.print(f"no runs under {root} (`dlcli train RECIPE --out {root}` writes one)")
        return
    title = f"runs under {root}, newest first" + (f" ({len(entries)} of {shown_of})" if len(entries) < shown_of else "")
    table = Table(title=title)
    for column, justify in (("started", "left"), ("recipe", "left"), ("ended", "left"), ("epochs", "right"),
                            ("best", "right"), ("result", "left"), ("wall", "right"), ("folder", "left")):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column in ("started", "folder"))
    for entry in entries:
        ended = entry.ended + "".join(f"; {note}" for note in entry.notes)
        table.add_row(entry.started.strftime("%Y-%m-%d %H:%M") if entry.started else MISSING,
                      (entry.recipe or MISSING) + (" (comparison)" if entry.kind == "comparison" else ""),
                      ended, number(entry.epochs), number(entry.best_epoch), result_cell(entry),
                      duration(entry.wall_time_s), str(entry.path))
    console.print(table)


def print_runs_comparison(comparison) -> None:
    """Results side by side, the recipe keys that differ, and where the overlaid curves are."""
    console = table_console()
    keys = list(dict.fromkeys(key for row in comparison.rows for key in row.results))
    results = Table(title="results (best weights on the split named; comparisons: their variants' seed means)")
    for column in ("run", "ended", "epochs", "best", "split", *keys, "wall"):
        results.add_column(column, justify="left" if column in ("run", "ended", "split") else "right",
                           overflow="fold")
    for row in comparison.rows:
        results.add_row(row.label, row.ended, number(row.epochs), number(row.best_epoch), row.split or MISSING,
                        *(number(row.results.get(key)) for key in keys), duration(row.wall_time_s))
    console.print(results)
    if comparison.differences:
        labels = list(next(iter(comparison.differences.values())))
        recipes = Table(title="recipe keys that differ")
        recipes.add_column("key")
        for label in labels:
            recipes.add_column(label, overflow="fold")
        for key, values in comparison.differences.items():
            recipes.add_row(key, *(MISSING if values[label] is None else repr(values[label]) for label in labels))
        console.print(recipes)
    else:
        console.print("the resolved recipes are identical")
    for note in comparison.notes:
        console.print(f"note: {note}")
    console.print(f"curves: {comparison.figure}")
