"""From a grid's runs to each variant's numbers and the verdict (``dlcli compare``).

Each variant gets mean ± sample standard deviation over seeds of the epoch a
run is judged by (its last, or with early stopping its best: the weights
``dlcli train`` keeps), its best value of the primary metric, the epochs
and the seconds it needed to reach 90% of the best value any run reached,
and its wall time. The primary metric and the verdict follow
:mod:`dlcli.compare.stats`, the rules compare-activations uses.
"""

from __future__ import annotations

import math
from typing import Any

from dlcli.compare.grid import Variant
from dlcli.compare.stats import TARGET_FRACTION, diagnostic_fields, epochs_to, mean_std, primary_metric, verdict
from dlcli.recipe import Recipe

BOOKKEEPING = ("epoch", "learning_rate", "time_s", "samples_per_s", "grad_norms")  # grad_norms: per layer


def judged_record(history: list[dict[str, Any]], best_epoch: int, early_stopping: bool) -> dict[str, Any]:
    if not history:
        return {}
    return history[best_epoch - 1] if early_stopping and best_epoch else history[-1]


def seconds_to(history: list[dict[str, Any]], key: str, target: float, higher: bool) -> float | None:
    """Training seconds until ``key`` first reached ``target`` (the fair axis when batch sizes differ)."""
    elapsed = 0.0
    for record in history:
        elapsed += record.get("time_s", 0.0)
        value = record.get(key)
        if value is not None and (value >= target if higher else value <= target):
            return elapsed
    return None


def summarize_variants(recipe: Recipe, variants: list[Variant], runs: list[dict[str, Any]], seeds: list[int],
                       wall_seconds: float, diagnosed: bool = False) -> dict[str, Any]:
    """summary.json of a comparison: every run's judged epoch, each variant's row, the ranking and the verdict.

    ``diagnosed``: an activation comparison, whose runs carry gradient norms and unit shares; each row
    gets their summary, the rows are also listed as ``activations`` and the verdict speaks of activations.
    """
    early = recipe.train.early_stopping is not None
    for run in runs:
        for member in run["members"]:
            member["final"] = {k: v for k, v in judged_record(member["history"], member["best_epoch"], early).items()
                               if k not in BOOKKEEPING}
    key, higher = primary_metric(recipe, runs)
    values = [r[key] for run in runs for m in run["members"] for r in m["history"]
              if isinstance(r.get(key), float) and math.isfinite(r[key])]
    best = (max(values) if higher else min(values)) if values else math.nan
    target = (best * TARGET_FRACTION if best > 0 else best) if higher else best / TARGET_FRACTION
    rows = [variant_row(run, key, target, higher) | (diagnostic_fields(run) if diagnosed else {}) for run in runs]
    ranked = sorted((r for r in rows if (r["final"].get(key) or {}).get("mean") is not None),
                    key=lambda r: r["final"][key]["mean"], reverse=higher)
    stored = [{**run, "members": [{**{k: v for k, v in m.items() if k != "history"}, "epochs_run": len(m["history"])}
                                  for m in run["members"]]} for run in runs]
    summary = {
        "recipe": recipe.name, "varied": list(dict.fromkeys(k for v in variants for k in v.values)), "seeds": seeds,
        "primary": key, "higher_is_better": higher, "reported_epoch": "best (early stopping)" if early else "last",
        "target": {"value": target, "rule": f"{TARGET_FRACTION:.0%} of the best {key} of any run"},
        "ranking": [r["variant"] for r in ranked], "variants": rows,
        "verdict": verdict(recipe.name, ranked, stored, key, higher, label="activation" if diagnosed else "variant"),
        "runs": stored, "wall_time_s": wall_seconds,
    }
    if diagnosed:
        summary["activations"] = rows  # the name compare-activations' readers know its rows by
    return summary


def variant_row(run: dict[str, Any], key: str, target: float, higher: bool) -> dict[str, Any]:
    members = run["members"]
    finals = [m["final"] for m in members]
    names = list(dict.fromkeys(k for f in finals for k in f))
    histories = [m["history"] for m in members]
    reached = [epochs_to(h, key, target, higher) for h in histories]
    seconds = [seconds_to(h, key, target, higher) for h in histories]
    best = [max(vals) if higher else min(vals) for h in histories
            if (vals := [r[key] for r in h if isinstance(r.get(key), float) and math.isfinite(r[key])])]
    return {
        "variant": run["variant"], "values": run["values"], "group": run["group"], "parameters": run["parameters"],
        "seeds": len(members), "final": {k: mean_std([f.get(k) for f in finals]) for k in names},
        "best": mean_std(best), "epochs_to_target": mean_std([r for r in reached if r is not None]),
        "seconds_to_target": mean_std([s for s in seconds if s is not None]),
        "reached_target": sum(r is not None for r in reached),
        "diverged": sum(m["ended"] == "diverged" for m in members),
        "early_stopped": sum(m["ended"] == "early_stopped" for m in members),
        "wall_time_s": run["wall_time_s"], "train_time_s": run["train_time_s"],
    }
