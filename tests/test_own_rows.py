"""A query's own rows in one policy's history (``v0lite._own_rows``), against a plain scan."""

from __future__ import annotations

import numpy as np
import pytest

from v0lite._own_rows import own_groups, own_rows
from v0lite.index import HistoryIndex


def _index(rng, n):
    emb = rng.standard_normal((6, 4)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    step = rng.choice(np.array([0, 3, 7, 20]), n)
    prompt = rng.integers(0, 6, n)
    score = rng.random(n)
    return HistoryIndex(emb, [f"{i:064x}" for i in range(6)], ["p"], np.zeros(n, np.int32), prompt, score, step)


def _scan(idx, t, prow, hide):
    """The query's own rows, by their definition: its (prompt, step) when t is a checkpoint, or its prompt."""
    mine = (idx.prompt_row == prow) & (idx.step <= t) & (prow >= 0)
    if hide == "same_step":
        mine &= idx.step == t
    return np.flatnonzero(mine)


@pytest.mark.parametrize("hide", ["same_step", "any_step"])
def test_own_rows_and_own_groups_are_the_rows_a_scan_finds(hide):
    rng = np.random.default_rng(7)
    for _ in range(30):
        idx = _index(rng, int(rng.integers(1, 60)))
        # queries at checkpoints, between them, before the first and after the last; prompts in and out
        step = rng.choice(np.array([-1, 0, 1, 3, 5, 7, 20, 30]), 40)
        prow = rng.integers(-1, 6, 40)
        c, s, s2 = own_rows(idx, 0, step, prow, hide)
        gq, ck, gc, gs = own_groups(idx, 0, step, prow, hide)
        ustep = np.unique(idx.step)
        for i in range(40):
            rows = _scan(idx, step[i], prow[i], hide)
            sc = idx.score[rows]
            assert (c[i], s[i], s2[i]) == pytest.approx((len(rows), sc.sum(), (sc**2).sum()), abs=1e-12)
            mine = gq == i
            want = {int(np.searchsorted(ustep, u)): rows[idx.step[rows] == u] for u in np.unique(idx.step[rows])}
            assert ck[mine].tolist() == sorted(want)  # sorted by checkpoint within the query
            for k, n, tot in zip(ck[mine], gc[mine], gs[mine]):
                assert (n, tot) == pytest.approx((len(want[k]), idx.score[want[k]].sum()), abs=1e-12)
        assert np.all(np.diff(gq) >= 0)


def test_no_hiding_mode_has_no_own_rows():
    idx = _index(np.random.default_rng(0), 20)
    step, prow = np.array([3, 7]), np.array([1, 2])
    assert all(np.all(a == 0) for a in own_rows(idx, 0, step, prow, "none"))
    assert all(len(a) == 0 for a in own_groups(idx, 0, step, prow, "none"))
