"""A row too large to gather at once is gathered step by step, with the same training."""

import jax
import numpy as np

from dlcli.engine import program
from conftest import train_recipe


def trained_params(monkeypatch, tmp_path, max_gathered_bytes: int) -> list[np.ndarray]:
    monkeypatch.setattr(program, "MAX_GATHERED_BYTES", max_gathered_bytes)
    result = train_recipe("moons-mlp", tmp_path / str(max_gathered_bytes), "train.epochs=2")
    assert result.summary["compilations"]["train"] == 1
    from dlcli.runs import open_run

    return [np.asarray(p) for p in jax.tree.leaves(open_run(result.run_dir).params)]


def test_step_by_step_gather_trains_like_the_chunk_gather(monkeypatch, tmp_path):
    whole = trained_params(monkeypatch, tmp_path, program.MAX_GATHERED_BYTES)
    stepwise = trained_params(monkeypatch, tmp_path, 0)
    for a, b in zip(whole, stepwise):
        np.testing.assert_allclose(a, b, atol=1e-6)
