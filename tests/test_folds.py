"""Tests of v0lite._folds: the one prompt-grouped fold splitter."""

from __future__ import annotations

import numpy as np
import pytest

from v0lite._folds import prompt_folds
from v0lite.exceptions import ParameterError


@pytest.mark.parametrize("n, k", [(1, 1), (7, 3), (100, 5), (1001, 4)])
def test_folds_are_balanced_seeded_and_cover_every_prompt(n, k):
    f = prompt_folds(n, k, random_state=3)
    assert f.shape == (n,) and set(f.tolist()) <= set(range(k))
    counts = np.bincount(f, minlength=k)
    assert counts.max() - counts.min() <= 1
    assert np.array_equal(f, prompt_folds(n, k, random_state=3))
    if n > k:
        assert not np.array_equal(f, prompt_folds(n, k, random_state=4))


def test_same_split_as_the_shuffle_the_episodes_used():
    # the episodes shuffled arange(n) % k in place; the same generator gives the same folds
    for n, k, seed in [(10, 3, 0), (57, 5, 1), (200, 4, 9)]:
        old = np.arange(n) % k
        np.random.default_rng(seed).shuffle(old)
        assert np.array_equal(prompt_folds(n, k, seed), old)


def test_bad_fold_count():
    for bad in (0, 2.5, True):
        with pytest.raises(ParameterError, match="n_folds"):
            prompt_folds(5, bad)


def test_router_and_baseline_folds_come_from_it(monkeypatch):
    import v0lite.routing._baselines as B

    calls = []
    real = B.prompt_folds

    def spy(n, k, rs):
        calls.append((n, k))
        return real(n, k, rs)

    monkeypatch.setattr(B, "prompt_folds", spy)
    rng = np.random.default_rng(0)
    E = rng.normal(size=(12, 4))
    B.tune_knn_router(E, rng.integers(0, 2, (12, 2)).astype(float), np.array([1.0, 2.0]), ks=(2, 4), cv=3)
    assert calls == [(12, 3)]
