"""The comparison tables (compare-activations, compare): Rich on a terminal, aligned plain text when piped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from dlcli.report.console import make_console


def _pm(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _share(row: dict[str, Any], when: str) -> str:
    stat = (row["units"] or {}).get(when) if row["units"] else None
    return "-" if not stat or stat.get("mean") is None else f"{stat['mean']:.0%}"


def comparison_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """compare's columns (:func:`variant_rows`) with the activation diagnostics added, one row per activation."""
    headers, rows = variant_rows(summary)
    by_label = {row["activation"]: row for row in summary["activations"]}
    headers = ["activation", *headers[1:-1], "grad 1st/last init → end", "dead/inactive/sat. init → end",
               "active@init", headers[-1]]
    for cells in rows:
        row = by_label[cells[0]]
        kind = {"dead": "dead ", "inactive": "inact. ", "saturated": "sat. "}.get(row["unit_share"], "")
        cells[-1:-1] = [
            f"{_sci(row['grad_ratio_first_last']['init'])} → {_sci(row['grad_ratio_first_last']['final'])}",
            f"{kind}{_share(row, 'init')} → {_share(row, 'final')}" if kind else "-",
            _pm(row["active_at_init"], 2) if row["active_at_init"]["mean"] is not None else "-",
        ]
    return headers, rows


def variant_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Column headers and one row of text per variant of ``dlcli compare``, in ranking order."""
    primary = summary["primary"]
    metric_keys = [k for k in (summary["variants"][0]["final"] if summary["variants"] else {})
                   if k not in ("loss", "val_loss") and k.startswith("val_")]
    headers = ["variant", "group", "train loss", "val loss", *metric_keys, f"best {primary}",
               f"epochs to {summary['target']['value']:.3g} (reached)", "seconds to it", "wall s"]
    order = {name: i for i, name in enumerate(summary["ranking"])}
    rows = []
    for row in sorted(summary["variants"], key=lambda r: order.get(r["variant"], len(order))):
        final, epochs, seconds = row["final"], row["epochs_to_target"], row["seconds_to_target"]
        rows.append([
            row["variant"], str(row["group"]), _pm(final.get("loss")), _pm(final.get("val_loss")),
            *(_pm(final.get(k)) for k in metric_keys), _pm(row["best"]),
            f"{epochs['mean']:.1f} ({row['reached_target']}/{row['seeds']})" if epochs["mean"] is not None
            else f"never (0/{row['seeds']})",
            f"{seconds['mean']:.2f}" if seconds["mean"] is not None else "-", f"{row['wall_time_s']:.1f}",
        ])
    return headers, rows


def grouping(summary: dict[str, Any]) -> str:
    """Which variants shared a program: ``group 1: 5 variant(s), variants and seeds vmapped in one program``."""
    return "; ".join(f"group {i + 1}: {len(g['variants'])} variant(s), {g['vmapped']} vmapped in one program"
                     for i, g in enumerate(summary["groups"]))


def print_variants(run_dir: Path, summary: dict[str, Any]) -> None:
    title = (f"{summary['recipe']}: {len(summary['variants'])} variants x {len(summary['seeds'])} seeds "
             f"(mean ± std over seeds, {summary['reported_epoch']} epoch; ranked by {summary['primary']})")
    print_table(run_dir, summary, title, *variant_rows(summary), grouping(summary))


def print_comparison(run_dir: Path, summary: dict[str, Any]) -> None:
    groups = "; ".join(f"{', '.join(g['variants'])} in one program" for g in summary["groups"])
    title = (f"{summary['recipe']}: {len(summary['activations'])} activations x {len(summary['seeds'])} seeds "
             f"(mean ± std over seeds, {summary['reported_epoch']} epoch; ranked by {summary['primary']}; "
             f"{groups})")
    print_table(run_dir, summary, title, *comparison_rows(summary))


def print_rows(console, title: str, headers: list[str], rows: list[list[str]]) -> None:
    """A Rich table on a terminal; aligned plain columns, never cut, in a pipe or a log."""
    if console.is_terminal:
        table = Table(title=title)
        for i, header in enumerate(headers):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        console.print(title)
        for line in (headers, *rows):
            console.print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def print_table(run_dir: Path, summary: dict[str, Any], title: str, headers: list[str], rows: list[list[str]],
                note: str = "") -> None:
    console = make_console()
    print_rows(console, title, headers, rows)
    if note:
        console.print(note)
    console.print(summary["verdict"])
    console.print(f"comparison directory: {run_dir} (plots in {run_dir / 'plots'}); "
                  f"total wall time {summary['wall_time_s']:.1f} s")
