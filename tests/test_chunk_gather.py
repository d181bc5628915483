"""A chunk too large to gather at once is gathered step by step, with the same training."""

import jax
import jax.numpy as jnp
import numpy as np

from dlcli.recipe import load_recipe
from dlcli.train import step as step_module
from dlcli.train.batches import epoch_indices
from dlcli.train.setup import prepare


def trained_params(monkeypatch, max_gathered_bytes: int) -> list[np.ndarray]:
    monkeypatch.setattr(step_module, "MAX_GATHERED_BYTES", max_gathered_bytes)
    setup = prepare(load_recipe("moons-mlp"))
    built = setup.built
    run_chunk = step_module.make_chunk_fn(
        step_module.make_train_step(built.train_graph, built.loss_fn, setup.optimizer, built.task))
    x, y = (jnp.asarray(a) for a in setup.data.splits["train"])
    state = setup.initial_state()
    for epoch in (1, 2):
        idx, weight = epoch_indices(len(x), setup.plan, 0, epoch)
        for chunk in range(setup.plan.chunks):
            state, _ = run_chunk(state, x, y, idx[chunk], weight[chunk])
    assert run_chunk._cache_size() == 1
    return [np.asarray(p) for p in jax.tree.leaves(state.params)]


def test_step_by_step_gather_trains_like_the_chunk_gather(monkeypatch):
    whole = trained_params(monkeypatch, step_module.MAX_GATHERED_BYTES)
    stepwise = trained_params(monkeypatch, 0)
    for a, b in zip(whole, stepwise):
        np.testing.assert_allclose(a, b, atol=1e-6)
