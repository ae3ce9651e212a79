"""The prompt-blind policy prior over checkpoints (``_step_chain.StepChain`` through ``policy_prior``).

Each checkpoint's mean is shrunk toward the estimate of the checkpoint before it, so one success at
a new checkpoint moves the prior up from the last one's; a query's own rows are left out exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from v0lite.index import CHECKPOINT_SHRINK as SHRINK
from v0lite.index import HistoryIndex, Queries, policy_prior


def _index(policy, prompt_row, score, step, n_prompts=8, n_pol=1):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n_prompts, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    keys = [f"{i:064x}" for i in range(n_prompts)]
    return HistoryIndex(emb, keys, [f"p{i}" for i in range(n_pol)], policy, prompt_row, score, step)


def _queries(idx, policy, prompt_row, step):
    emb = idx.emb[np.maximum(prompt_row, 0)]
    pol, st, pr = np.asarray(policy, np.int32), np.asarray(step, np.int64), np.asarray(prompt_row, np.int64)
    return Queries(policy=pol, step=st, emb=emb, prompt_row=pr)


def _reference(steps, scores, prompts, t, prow, hide):
    """The recursion over the eligible checkpoints, written out with a loop."""
    keep = steps <= t
    if hide == "any_step":
        keep &= prompts != prow
    elif hide == "same_step":
        keep &= ~((prompts == prow) & (steps == t))
    p, e = np.nan, 0.0  # e: the rows' worth behind p, of which the next checkpoint weighs at most SHRINK
    for u in np.unique(steps[keep]):
        sel = keep & (steps == u)
        n, total = sel.sum(), scores[sel].sum()
        w = min(SHRINK, e)
        p = total / n if np.isnan(p) else (total + w * p) / (n + w)
        e = n + w
    return p


@pytest.mark.parametrize("chunk", [1 << 20, 3])  # 3 own rows: a big batch's chunks, each query whole
@pytest.mark.parametrize("hide", [None, "same_step", "any_step"])
def test_the_prior_is_the_checkpoint_recursion_with_own_rows_left_out(hide, chunk, monkeypatch):
    from v0lite import index as index_mod

    monkeypatch.setattr(index_mod, "_OWN_CHUNK", chunk)
    rng = np.random.default_rng(3)
    for trial in range(80):
        # few checkpoints of many rows, and (every other trial) many of a few rows, which the chain walks
        n = int(rng.integers(1, 50)) if trial % 2 else int(rng.integers(20, 120))
        n_ck = int(rng.integers(1, 6)) if trial % 2 else int(rng.integers(10, 60))
        steps = rng.choice(rng.integers(0, 200, size=n_ck), n)
        prompts, scores = rng.integers(0, 6, n), rng.random(n)
        # one policy: with fewer than three nothing is shrunk toward the population
        idx = _index(np.zeros(n, np.int32), prompts, scores, steps)
        q_step = rng.choice(np.r_[np.unique(steps), np.unique(steps) + 1, [-1]], 25)
        q_prompt = rng.integers(-1, 7, 25)
        got = policy_prior(idx, _queries(idx, np.zeros(25), q_prompt, q_step), hide=hide)
        want = [_reference(steps, scores, prompts, t, p, hide) for t, p in zip(q_step, q_prompt)]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)


def test_a_success_at_a_new_checkpoint_raises_the_prior():
    # an improving policy: 0.2 at step 0, 0.8 at step 1 (40 rows each); the mean of all its rows is 0.5
    n = 40
    steps = np.repeat([0, 1], n)
    scores = np.r_[np.full(n, 0.2), np.full(n, 0.8)]
    prompts = np.tile(np.arange(8), 10)
    before = _index(np.zeros(2 * n, np.int32), prompts, scores, steps)
    after = before.add([], np.zeros((0, 8), np.float32), [], ["p0"], [f"{0:064x}"], [1.0], [2])
    at1 = policy_prior(before, _queries(before, [0], [-1], [1]))[0]
    at2 = policy_prior(after, _queries(after, [0], [-1], [2]))[0]
    assert at2 > at1  # (the mean of all steps, 0.5, would have pulled it down to ~0.52)
    # and the success's own query, which hides it, gets the last checkpoint's estimate back
    hidden = policy_prior(after, _queries(after, [0], [0], [2]), hide="same_step")[0]
    assert hidden == pytest.approx(at1)


def test_a_success_at_a_new_checkpoint_of_a_thin_policy_raises_its_shrunk_prior():
    """Review R: a policy known from 3 failures among three of 30 rows near 0.8. With the previous
    estimate counted as 20 rows, the success moved its level by 1/21 while the pool's shrinkage (which
    counts every row) moved the prior toward the policy's own low level: 0.7259 -> 0.7190."""
    rng = np.random.default_rng(1)
    pol = np.r_[np.repeat([0, 1, 2], 30), [3, 3, 3]].astype(np.int32)
    score = np.r_[(rng.random(90) < 0.8).astype(float), [0.0, 0.0, 0.0]]
    idx = _index(pol, np.r_[np.tile(np.arange(8), 12)[:90], [0, 1, 2]], score, np.zeros(93, np.int64), n_pol=4)
    after = idx.add([], np.zeros((0, 8), np.float32), [], ["p3"], [f"{3:064x}"], [1.0], [1])
    at = [policy_prior(i, _queries(i, [3], [-1], [1]))[0] for i in (idx, after)]
    assert at[1] > at[0], at


def test_a_static_policy_gets_its_mean():
    scores = np.array([0.0, 1.0, 1.0, 0.5])
    idx = _index(np.zeros(4, np.int32), np.arange(4), scores, np.zeros(4, np.int64))
    assert policy_prior(idx, _queries(idx, [0], [-1], [0]))[0] == pytest.approx(scores.mean())


def _improving_log():
    """Three static policies and one, 'rl', improving over three checkpoints (0.2, 0.5, 0.8)."""
    import polars as pl

    rng = np.random.default_rng(0)
    topics = ["add the numbers", "prove the lemma", "sort the list"]
    prompts = [f"{topics[i % 3]} case {i}" for i in range(30)]
    rows = [
        (pol, p, float(rng.binomial(8, sk) / 8), 0) for pol, sk in (("a", 0.3), ("b", 0.5), ("c", 0.7)) for p in prompts
    ]
    rows += [
        ("rl", p, float(rng.binomial(8, sk) / 8), st) for st, sk in ((0, 0.2), (1, 0.5), (2, 0.8)) for p in prompts
    ]
    return pl.DataFrame(rows, schema=["policy", "prompt", "score", "step"], orient="row"), prompts


# gbdt is left out: it learns from the policy-profile features (the latest checkpoint's count among them),
# and a learned model promises no direction (it moves the other prompts by -0.006 here)
@pytest.mark.parametrize("head", ["prior", "knn", "logistic", "ridge", "linear", "irt", "auto"])
def test_a_logged_success_at_a_new_checkpoint_raises_the_policys_predictions(make_model, head):
    import polars as pl

    log, prompts = _improving_log()
    model = make_model(head=head, random_state=0).fit(log)
    # every prompt at the next step (the success's own prompt sees it there) and the others at its step
    q = pl.DataFrame({"policy": ["rl"] * 59, "prompt": prompts + prompts[1:], "step": [4] * 30 + [3] * 29})
    before = model.predict(q)
    model.add_history(pl.DataFrame({"policy": ["rl"], "prompt": [prompts[0]], "score": [1.0], "step": [3]}))
    after = model.predict(q)
    # before the fix, shrinking the thin checkpoint toward the mean of every step: about -0.12 on every prompt;
    # and knn's weights, relative to the best neighbour, let the success's own row dilute the others: -0.37
    assert np.all(after >= before - 1e-9), (after - before).min()
    assert after[0] > before[0] and after.mean() > before.mean()


@pytest.mark.parametrize("head", ["prior", "knn", "logistic", "ridge", "linear", "irt", "auto"])
def test_a_logged_success_for_a_prompt_never_lowers_it_on_a_static_log(make_model, head):
    """A routing log (no step), the service's feedback: one success for a policy on a prompt new to the
    history, then that prompt and every other. knn's weights relative to the best neighbour lowered 12 of
    40 such prompts on the demo log (worst -0.11): the new exact match shrank the others against the prior."""
    import polars as pl

    log, prompts = _improving_log()
    log = log.filter(pl.col("policy") != "rl").drop("step")
    model = make_model(head=head, random_state=0).fit(log)
    fresh = [f"{p} again, with new numbers" for p in prompts[:10]]
    for new in fresh:
        q = pl.DataFrame({"policy": ["a"] * 11, "prompt": [new] + prompts[:10]})
        before = model.predict(q)
        after = model.add_history(pl.DataFrame({"policy": ["a"], "prompt": [new], "score": [1.0]})).predict(q)
        assert after[0] > before[0], (new, before[0], after[0])
        assert np.all(after >= before - 1e-9), (new, (after - before).min())


def test_a_success_alone_at_a_new_checkpoint_is_read_against_the_last_estimate(make_model):
    """A row's residual is its score minus its checkpoint's level (index.row_base). With the raw mean as
    that level, a checkpoint holding one row gave it a residual of exactly 0: the success said nothing of
    its prompt and diluted the neighbours that did (knn, demo log: 0.768 -> 0.760 after a success)."""
    import copy

    import polars as pl

    from v0lite.data._demo import demo_frames

    hist, queries = demo_frames()[:2]
    model = make_model(head="knn").fit(hist)
    fresh = [p for p in queries["prompt"].unique(maintain_order=True).to_list() if p not in set(hist["prompt"])][:20]
    q = pl.DataFrame({"policy": ["synthetic-tiny"] * len(fresh), "prompt": fresh, "step": [4] * len(fresh)})
    before = model.predict(q)
    for i, prompt in enumerate(fresh):
        m = copy.deepcopy(model)
        m.add_history(pl.DataFrame({"policy": ["synthetic-tiny"], "prompt": [prompt], "score": [1.0], "step": [3]}))
        assert m.predict(q[i])[0] > before[i], prompt
