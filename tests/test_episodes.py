"""Episodes never leak a query's own row, and cold folds never share a prompt with their context."""

import numpy as np
import pytest
from conftest import make_log

from v0lite._folds import prompt_folds
from v0lite.episodes import make_episodes


@pytest.fixture
def index(make_model):
    return make_model(head="prior").fit(make_log(n_policies=3, n_prompts=30, steps=True)).index_


def test_cold_episodes_hold_out_whole_prompts(index):
    eps = [e for e in make_episodes(index, n_folds=5, random_state=0) if e.kind == "cold"]
    assert len(eps) == 5
    seen = np.concatenate([e.rows for e in eps])
    assert np.array_equal(np.sort(seen), np.arange(index.n_rows))  # each row a cold query exactly once
    for e in eps:
        q_prompts = set(e.queries.prompt_row.tolist())
        assert q_prompts.isdisjoint(set(e.context.prompt_row.tolist()))


def test_warm_episode_hides_own_row(index):
    warm = [e for e in make_episodes(index, n_folds=3) if e.kind == "warm"][0]
    rows, _ = warm.context.search_queries(warm.queries, 50, warm.exclude)
    for i, r in enumerate(warm.rows):
        got = rows[i][rows[i] >= 0]
        own = (
            (index.prompt_row[got] == index.prompt_row[r])
            & (index.step[got] == index.step[r])
            & (index.policy[got] == index.policy[r])
        )
        assert not own.any()
        assert (index.step[got] <= index.step[r]).all()


def test_prompt_folds_are_seeded(index):
    assert np.array_equal(prompt_folds(len(index.keys), 4, 1), prompt_folds(len(index.keys), 4, 1))
    assert not np.array_equal(prompt_folds(len(index.keys), 4, 1), prompt_folds(len(index.keys), 4, 2))


def test_max_rows_caps_queries(index):
    for e in make_episodes(index, n_folds=2, max_rows=10):
        assert len(e.rows) <= 10


def test_thin_episodes_cut_one_policy_and_query_only_it(index):
    folds = prompt_folds(len(index.keys), 5, 0)
    thin = [e for e in make_episodes(index, n_folds=5, thin=2, random_state=0) if e.kind == "thin"]
    assert len(thin) == 10
    assert len({int(e.queries.policy[0]) for e in thin}) == 3  # the cycle visits every policy
    for e in thin:
        code = int(e.queries.policy[0])
        assert (e.queries.policy == code).all()
        f = folds[e.queries.prompt_row[0]]
        assert len(e.rows) <= max(1, int(0.1 * (folds[index.prompt_row] == f).sum()))
        assert (folds[e.queries.prompt_row] == f).all()
        # the fold is cold for every policy; the queried policy keeps at most 256 rows
        assert set(e.queries.prompt_row.tolist()).isdisjoint(set(e.context.prompt_row.tolist()))
        own = int((e.context.policy == code).sum())
        assert 1 <= own <= 256
        others = e.context.policy != code
        assert others.sum() == ((index.policy != code) & (folds[index.prompt_row] != f)).sum()


def test_thin_episodes_need_three_policies(make_model, index):
    two = make_model(head="prior").fit(make_log(n_policies=2, n_prompts=30)).index_
    assert {e.kind for e in make_episodes(two, n_folds=3, thin=2)} == {"cold", "warm"}
    assert "thin" not in {e.kind for e in make_episodes(index, n_folds=3, thin=0)}
