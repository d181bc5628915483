"""Paired statistics of a comparison: the primary metric, means over seeds, the verdict in plain words.

The *primary* number that decides the
winner is the validation split's first higher-is-better metric the recipe
asks for (accuracy, auc, r2), else the validation loss (the training loss
when there is no validation split). "Epochs to target" counts the epochs a
run needed to reach 90% of the best primary value any run reached (for a
loss: to come within 1/0.9 of the lowest).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlcli.compare.diagnostics import headline
from dlcli.recipe import Recipe

HIGHER_IS_BETTER = ("accuracy", "auc", "r2")
TARGET_FRACTION = 0.9


def primary_metric(recipe: Recipe, runs: list[dict[str, Any]]) -> tuple[str, bool]:
    """(record key, higher is better) of the number that ranks the activations."""
    final = next((m["final"] for run in runs for m in run["members"] if m["final"]), {})
    for name in [*recipe.evaluate.metrics, "accuracy"]:
        if name in HIGHER_IS_BETTER and f"val_{name}" in final:
            return f"val_{name}", True
    return ("val_loss", False) if "val_loss" in final else ("loss", False)


def mean_std(values: list[float]) -> dict[str, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def geometric_mean(values: list[float]) -> float | None:
    values = [v for v in values if v and math.isfinite(v) and v > 0]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def epochs_to(history: list[dict[str, Any]], key: str, target: float, higher: bool) -> int | None:
    for record in history:
        value = record.get(key)
        if value is not None and (value >= target if higher else value <= target):
            return record["epoch"]
    return None


def diagnostic_fields(run: dict[str, Any]) -> dict[str, Any]:
    """An activation's gradient flow and unit health, over its seeds, for its row of the comparison."""
    members = run["members"]
    ratio = {when: geometric_mean([m["grad_norms"][when][0] / m["grad_norms"][when][-1] for m in members
                                   if m["grad_norms"][when][-1]]) for when in ("init", "final")}
    first = {when: geometric_mean([m["grad_norms"][when][0] for m in members]) for when in ("init", "final")}
    share, share_name = headline(run["kind"]) or (None, None)
    units = {when: mean_std([m["units"][when][share] for m in members]) if share else None
             for when in ("init", "final")}
    return {
        "activation": run["activation"], "grad_ratio_first_last": ratio, "first_layer_grad_norm": first,
        "unit_share": share_name, "units": units,
        "active_at_init": mean_std([m["units"]["init"]["active"] for m in members if m["units"]["init"]["active"]
                                    is not None]),
    }


def verdict(name: str, ranked: list[dict], runs: list[dict], key: str, higher: bool, label: str = "activation") -> str:
    """One paragraph: winner, margin, whether the margin beats the seed spread (paired by seed), the loser's why.

    ``label`` is the key that names a row and a run (``activation``, or ``variant`` for ``dlcli compare``).
    """
    if not ranked:
        return f"No {label} produced a finite result; every run diverged."
    winner = ranked[0]
    w = winner["final"][key]
    text = f"{winner[label]} won on {name}: {key} {w['mean']:.4f} ± {w['std']:.4f} over {winner['seeds']} seeds"
    if len(ranked) == 1:
        return text + f" (the only {label} compared)."
    runner = ranked[1]
    r = runner["final"][key]
    margin = abs(w["mean"] - r["mean"])
    spread = max(w["std"], r["std"])
    paired = paired_wins(runs, winner[label], runner[label], key, higher, label)
    text += (f", {margin:.4f} {'ahead of' if margin else 'level with'} {runner[label]} "
             f"({r['mean']:.4f} ± {r['std']:.4f}). The margin is "
             f"{'larger than' if margin > spread else 'within'} the seed spread (largest std {spread:.4f})")
    if paired[1]:
        agrees = (margin > spread) == (2 * paired[0] > paired[1])  # the paired count tells the same story
        text += (f", {'and' if agrees else 'but'} {winner[label]} was ahead in {paired[0]} of {paired[1]} "
                 "paired seeds.")
    else:
        text += "."
    if margin <= spread:
        text += " Treat the top two as tied on this recipe; more seeds would tell them apart."
    last = ranked[-1]
    if last is not runner:
        text += f" {last[label]} came last ({last['final'][key]['mean']:.4f})"
        ratio = last.get("grad_ratio_first_last", {}).get("init")
        if last.get("unit_share") == "saturated" and ratio is not None and ratio < 1e-2:
            text += (f": at initialisation its first layer's gradient was {ratio:.1e} of the last layer's, "
                     "the vanishing gradient")
        text += "."
    dead = [row for row in ranked if row.get("unit_share") == "dead" and (row["units"]["final"] or {}).get("mean")
            and row["units"]["final"]["mean"] > 0.1]
    for row in dead:
        text += f" {row['units']['final']['mean']:.0%} of {row['activation']}'s hidden units ended dead."
    return text


def paired_wins(runs: list[dict], a: str, b: str, key: str, higher: bool, label: str = "activation"
                ) -> tuple[int, int]:
    """How many seeds ``a`` beat ``b`` on, out of the seeds both finished."""
    by = {run[label]: {m["seed"]: m["final"].get(key) for m in run["members"]} for run in runs}
    pairs = [(by[a][s], by[b].get(s)) for s in by[a] if by[a][s] is not None and by[b].get(s) is not None]
    return sum((x > y) if higher else (x < y) for x, y in pairs), len(pairs)
