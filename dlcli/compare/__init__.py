"""Comparisons of recipe variants trained on the same split with the same seeds.

- :mod:`dlcli.compare.grid` and :mod:`dlcli.compare.experiment`: ``dlcli compare``, a grid over any
  recipe keys, variants grouped into shared programs where only what a state carries differs
  (:mod:`dlcli.compare.carried`);
  :mod:`dlcli.compare.summary` and :mod:`dlcli.compare.variant_plots` its numbers and figures;
- :mod:`dlcli.compare.activations`: ``dlcli compare-activations``, which is ``dlcli compare --vary
  model.activation=...`` with gradient-flow and unit diagnostics;
- :mod:`dlcli.compare.choice`: the hidden activation as data, so activations share a program;
- :mod:`dlcli.compare.diagnostics`: gradient flow and unit health per layer;
- :mod:`dlcli.compare.stats`: paired statistics and the verdict;
- :mod:`dlcli.compare.plots` and :mod:`dlcli.compare.table`: figures and the console table,
  drawn from the comparison's files.
"""
