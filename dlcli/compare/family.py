"""One activation's runs, and the compiled programs that activations share.

A *family* is a set of compared activations whose models have the same
parameter shapes. All element-wise activations form one family: their
hidden layers become :class:`~dlcli.compare.choice.ChoiceActivation` layers,
so the train chunk, the evaluation and the diagnostics compile once for all
of them. Maxout with k pieces has wider layers and is a family of its own.

(Compiling later families in a background thread while the first trains
was tried and measured: on two cores it was 1-2 s slower, not faster.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from dlcli.activations import ActivationSpec, get_activation, pieces_per_unit, split_spec
from dlcli.compare import diagnostics
from dlcli.compare.choice import ChoiceActivation, can_share, with_choice
from dlcli.recipe import Recipe
from dlcli.train.setup import Setup
from dlcli.engine.driver import Engine, stack_trees
from dlcli.engine.stack import member_states, train_stack


def family_key(spec: ActivationSpec) -> int:
    return pieces_per_unit(spec)  # 1: element-wise; k: maxout with k pieces


def group_families(activations: list[ActivationSpec]) -> dict[int, Family]:
    """Families in the order their first activation is listed."""
    families: dict[int, Family] = {}
    for spec in activations:
        families.setdefault(family_key(spec), Family([])).specs.append(spec)
    return families


@dataclass
class Family:
    specs: list[ActivationSpec]
    engine: Engine | None = None  # compiled for the family's architecture and the number of seeds
    diagnose: Any = None  # dlcli.compare.diagnostics.make_diagnose

    def adapt(self, spec: ActivationSpec):
        """The model change that lets ``spec`` share this family's programs (none for a family of one)."""
        if len(self.specs) == 1:
            return lambda built: built
        names = tuple(split_spec(s)[0] for s in self.specs)
        fns = tuple(get_activation(s) for s in self.specs)
        index = self.specs.index(spec)
        return lambda built: with_choice(built, names, fns, index) if can_share(built.model) else built

    def shares(self, built) -> bool:
        """Whether ``built`` can run on the programs made for another member of this family."""
        return len(self.specs) == 1 or any(isinstance(layer, ChoiceActivation)
                                           for layer in getattr(built.model, "layers", []))

    def make(self, setup: Setup, built, seeds: list[int], probe, x_units) -> None:
        self.diagnose = diagnostics.make_diagnose(built.eval_graph, built.loss_fn,
                                                  diagnostics.has_hidden_layers(built.model))

        def grad_records(state) -> list[dict[str, Any]]:
            norms = jax.device_get(self.diagnose(state.params, state.rest, *probe, x_units))["grad_norms"]
            return [{"grad_norms": row.tolist()} for row in norms]

        self.engine = Engine(setup, seeds, built, epoch_extras=grad_records)

    def stack_for(self, setup: Setup, recipe: Recipe, seeds: list[int], spec: ActivationSpec
                  ) -> tuple[Any, list[Any]]:
        """The models of ``spec`` (member 0's assembly, every member's state), this family's engine ready."""
        built, states = member_states(setup, seeds, recipe, adapt=self.adapt(spec))
        if self.engine is None or not self.shares(built):
            probe, x_units, _ = probes(setup)
            self.make(setup, built, seeds, probe, x_units)
        return built, states


def probes(setup: Setup) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, Any]:
    """(gradient probe batch, unit-health examples, validation inputs on the device or None)."""
    x_train, y_train = setup.data.splits["train"]
    probe = x_train[:diagnostics.PROBE_EXAMPLES], y_train[:diagnostics.PROBE_EXAMPLES]
    x_units = setup.data.splits.get("val", setup.data.splits["train"])[0][:diagnostics.UNIT_EXAMPLES]
    x_val = jax.device_put(setup.data.splits["val"][0]) if "val" in setup.data.splits else None
    return probe, x_units, x_val


def reported_record(member, setup: Setup) -> dict[str, Any]:
    """The epoch a run is judged by: its last, or with early stopping its best (the weights `dlcli train` keeps)."""
    if not member.history:
        return {}
    if setup.recipe.train.early_stopping is not None and member.best_epoch:
        return member.history[member.best_epoch - 1]
    return member.history[-1]


def run_activation(setup: Setup, recipe: Recipe, seeds: list[int], label: str, reporter, write,
                   family: Family) -> dict[str, Any]:
    """All seeds of one activation as one program, with gradient and unit diagnostics before and after."""
    tick = time.perf_counter()
    spec = recipe.model.settings()["activation"]
    name = split_spec(spec)[0]
    built, states = family.stack_for(setup, recipe, seeds, spec)
    probe, x_units, _ = probes(setup)

    def measure(params, rest) -> tuple[np.ndarray, list[dict[str, Any]]]:
        shares = jax.device_get(family.diagnose(params, rest, *probe, x_units))
        norms = shares.pop("grad_norms")  # (M, weight matrices)
        units = [diagnostics.unit_summary({k: v[m] for k, v in shares.items()}, name) for m in range(len(seeds))]
        return norms, units

    stacked = stack_trees([(s.params, s.rest) for s in states])
    init_norms, init_units = measure(*stacked)
    result = train_stack(family.engine, states, reporter, f"{label} x{len(seeds)} seeds", on_record=write)
    final_norms, final_units = measure(result.last.params, result.last.rest)
    members = []
    for m, member in enumerate(result.members):
        members.append({
            "seed": member.seed, "ended": member.ended, "epochs_run": len(member.history),
            "best_epoch": member.best_epoch, "monitor": member.monitor,
            "final": {k: v for k, v in reported_record(member, setup).items() if k != "grad_norms"},
            "grad_norms": {"init": init_norms[m].tolist(), "final": final_norms[m].tolist()},
            "units": {"init": init_units[m], "final": final_units[m]}, "history": member.history,
        })
    return {"activation": label, "kind": name, "parameters": built.parameter_count, "members": members,
            "wall_time_s": time.perf_counter() - tick, "train_time_s": result.train_seconds,
            "compilations": result.compilations}
