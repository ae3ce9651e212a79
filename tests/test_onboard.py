"""A new model from a few outcomes (issue 29): the pool prior, the unseen-policy fallback, suggest_prompts, the CLI."""

import numpy as np
import polars as pl
import pytest
from conftest import EASE, TOPICS, difficulty_log, make_log, topic_log

from v0lite.exceptions import DataError, ParameterError, V0liteError, V0liteWarning
from v0lite.heads.logistic import population_prior


def _pool_off(model):
    for h in [model.head_, *getattr(model.head_, "heads_", {}).values()]:
        if h is not None and "pool_prior" in getattr(h, "params", {}):
            h.params["pool_prior"] = False


def test_population_prior_is_the_inverse_of_the_pool_covariance():
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(5, 7)), rng.normal(size=5)
    w0, b0, P, b_var = population_prior(W, b, 4.0)
    D = W - W.mean(0)
    cov = D.T @ D / 4 + np.eye(7) / 4.0
    np.testing.assert_allclose(P @ cov, np.eye(7), atol=1e-8)
    np.testing.assert_allclose(w0, W.mean(0))
    assert b0 == pytest.approx(b.mean()) and b_var == pytest.approx(max(np.var(b, ddof=1), 1e-2))
    assert population_prior(W[:2], b[:2], 4.0)[2] is None  # two policies: no population, the isotropic pull


def _copy_of(log, src, name):
    return log.filter(pl.col("policy") == src).with_columns(pl.lit(name).alias("policy"))


def test_a_new_policy_moves_toward_the_pool_policy_it_resembles(make_model):
    """Outcomes of a copy of policy 'a' under a new name: with the pool prior its predictions follow a's profile.

    The fitted policies have hundreds of rows each, so their penalty is strong; before issue 29 the
    new policy was solved with that penalty and barely left the average of the pool.
    """
    log = topic_log(n_prompts=400, policies=("a", "b", "c", "d"))
    prompts = sorted(log["prompt"].unique().to_list())
    test_prompts = set(prompts[::4])
    hist = log.filter(~pl.col("prompt").is_in(test_prompts))
    model = make_model(head="logistic", head_params={"alphas": [3.0]}).fit(hist)
    a = hist.filter(pl.col("policy") == "a")
    q_a = log.filter((pl.col("policy") == "a") & pl.col("prompt").is_in(test_prompts))
    target = model.predict(q_a)
    model.add_history(_copy_of(a, "a", "new").sample(20, seed=0))
    q_new = q_a.with_columns(pl.lit("new").alias("policy"))
    with_pool = model.predict(q_new)
    base = model.index_
    _pool_off(model)
    model.index_ = base.add([], np.zeros((0, base.dim), np.float32), [], [], [], [], [])  # a fresh cache
    without = model.predict(q_new)
    assert np.corrcoef(with_pool, target)[0, 1] > 0.9
    assert np.abs(with_pool - target).mean() < 0.6 * np.abs(without - target).mean()


def test_more_outcomes_move_the_new_policy_further(make_model):
    log = topic_log(n_prompts=400, policies=("a", "b", "c", "d"))
    hist = log.filter(pl.col("policy") != "d")
    model = make_model(head="logistic", head_params={"alphas": [3.0]}).fit(hist)
    d = _copy_of(log, "d", "d").sample(fraction=1.0, seed=1, shuffle=True)
    q = log.filter(pl.col("policy") == "d")
    y = q["score"].to_numpy()
    base = model.index_
    err = []
    for n in (5, 40, 300):
        model.index_ = base
        model.add_history(d.head(n))
        err.append(float(np.mean((model.predict(q) - y) ** 2)))
    assert err[0] > err[1] > err[2]


def test_unknown_policy_gets_the_pool_difficulty_prior_with_global_mean_fallback(make_model):
    log = difficulty_log(n_prompts=200)
    model = make_model(head="logistic", fallback="global_mean").fit(log)
    prompts = log["prompt"].unique(maintain_order=True).to_list()[:40]  # every topic
    q = pl.DataFrame({"policy": ["never-seen"] * len(prompts), "prompt": prompts})
    p = model.predict(q)
    assert p.std() > 0.05  # it reads the prompt, not one constant
    ease = np.array([EASE[TOPICS.index(t.split(" case")[0])] for t in prompts])
    assert np.corrcoef(p, ease)[0, 1] > 0.9  # easy prompts (for the whole pool) first
    pool = np.column_stack(
        [model.predict(q.with_columns(pl.lit(name).alias("policy"))) for name in ("a", "b", "c", "d")]
    )
    logit = np.log(pool / (1 - pool)).mean(1)
    assert np.corrcoef(p, logit)[0, 1] > 0.9  # the pool's view of the prompt
    mu = model.index_.population()[0]
    assert abs(p.mean() - mu) < 0.1
    with pytest.raises(V0liteError, match="never-seen"):
        make_model(head="logistic").fit(log).predict(q)  # fallback="error" is unchanged


def test_a_pool_of_specialists_gives_an_unknown_policy_no_ranking(make_model):
    """topic_log's policies share no difficulty (each strong where another is weak): left one out, each
    policy's outcomes fall as the others' rise. The pool's base keeps non-negative slopes, so an unknown
    policy gets the pool's level, not the reverse of the pool's ranking (a slope of -1 without the rule)."""
    log = topic_log(n_prompts=200, policies=("a", "b", "c", "d"))
    model = make_model(head="logistic", fallback="global_mean").fit(log)
    mix = model.head_.pool_mix_
    assert mix is not None and (mix[1:] >= 0).all()
    prompts = sorted(log["prompt"].unique().to_list())[:40]
    p = model.predict(pl.DataFrame({"policy": ["never-seen"] * 40, "prompt": prompts}))
    assert p.std() < 0.01 and abs(p.mean() - log["score"].mean()) < 0.05


def test_pool_levels_far_apart_still_give_an_unknown_policy_the_shared_difficulty(make_model):
    """Policies of very different strength sharing one difficulty. Left out, the strongest policy's
    outcomes sit far above the others' consensus and the weakest far below: with one shared intercept
    in the leave-one-policy-out mix that cross-policy gap drowned the within-policy ranking and both
    slopes fitted to 0 (a flat base). A free level per policy keeps the ranking."""
    rng = np.random.default_rng(0)
    rows = {"policy": [], "prompt": [], "score": []}
    for k, ability in enumerate((-2.5, -1.0, 1.0, 2.5)):
        for i in range(200):
            t = i % 4
            rows["policy"].append(f"p{k}")
            rows["prompt"].append(f"{TOPICS[t]} case {i}")
            rows["score"].append(rng.binomial(10, 1 / (1 + np.exp(-(ability + EASE[t])))) / 10)
    log = pl.DataFrame(rows)
    model = make_model(head="logistic", fallback="global_mean").fit(log)
    assert model.head_.pool_mix_[1:].sum() > 0.5
    prompts = log["prompt"].unique(maintain_order=True).to_list()[:40]
    p = model.predict(pl.DataFrame({"policy": ["never-seen"] * 40, "prompt": prompts}))
    ease = np.array([EASE[TOPICS.index(t.split(" case")[0])] for t in prompts])
    assert np.corrcoef(p, ease)[0, 1] > 0.9


def test_mix_slopes_with_per_policy_levels_match_a_dense_one_hot_fit():
    """The levels are profiled out (Schur complement) rather than fitted as one-hot columns."""
    from v0lite.heads._pool_items import _levels_and_slopes

    rng = np.random.default_rng(3)
    n, groups = 2000, 25
    g = rng.integers(0, groups, n)
    X = rng.normal(size=(n, 2))
    y = rng.binomial(4, 1 / (1 + np.exp(-(rng.normal(0, 2, groups)[g] + X @ [0.8, 0.3])))) / 4
    w = rng.integers(1, 4, n).astype(float)
    # the reference: plain Newton on one-hot level columns (free) and the two slopes (same ridge)
    F = np.column_stack([np.eye(groups)[g], X])
    pen = np.r_[np.zeros(groups), np.full(2, 1e-3 * w.sum())]
    beta = np.zeros(F.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(F @ beta)))
        H = (F * (w * p * (1 - p))[:, None]).T @ F + np.diag(pen + 1e-9)
        beta -= np.linalg.solve(H, F.T @ (w * (p - y)) + pen * beta)
    dense = beta[groups:]
    np.testing.assert_allclose(_levels_and_slopes(X, y, w, g), dense, atol=1e-6)
    assert abs(dense[0] - 0.8) < 0.1 and abs(dense[1] - 0.3) < 0.1


def test_pool_items_are_fitted_leaving_each_policy_out():
    from v0lite.heads._pool_items import _features

    rng = np.random.default_rng(0)
    lin, S = rng.normal(size=(6, 4)), rng.integers(0, 5, size=(6, 4)).astype(float)
    C = S + rng.integers(0, 5, size=(6, 4))
    c, nb = _features(lin, S, C, drop=1)
    keep = [0, 2, 3]
    np.testing.assert_allclose(c, lin[:, keep].mean(1))
    s, n = S[:, keep].sum(1), C[:, keep].sum(1)
    np.testing.assert_allclose(nb, np.log((s + 1) / (n - s + 1)))
    # a pool policy with no row at or before the query's step (NaN, item_table) is left out of the consensus
    lin[:2, 3] = np.nan
    np.testing.assert_allclose(_features(lin, S, C, drop=1)[0], np.r_[lin[:2, [0, 2]].mean(1), lin[2:, keep].mean(1)])
    np.testing.assert_allclose(_features(lin, S, C)[0][:2], lin[:2, :3].mean(1))


def test_pool_mix_round_trips_and_an_older_save_refits_it(make_model, tmp_path):
    import json as _json

    log = difficulty_log(n_prompts=120)
    model = make_model(head="logistic", fallback="global_mean").fit(log)
    model.save(tmp_path / "m")
    q = pl.DataFrame({"policy": ["x"] * 8, "prompt": sorted(log["prompt"].unique().to_list())[:8]})
    p = model.predict(q)
    from v0lite.estimator import V0Regressor

    back = V0Regressor.load(tmp_path / "m", encoder=model.encoder)
    np.testing.assert_allclose(back.head_.pool_mix_, model.head_.pool_mix_)
    np.testing.assert_allclose(back.predict(q), p)
    # a model saved before the mix existed: its meta has no "pool_mix"; the mix is fitted on first use
    from v0lite.persist import _meta_digest

    f = tmp_path / "m" / "meta.json"
    meta = _json.loads(f.read_text())
    assert _drop_key(meta, "pool_mix")
    meta["meta_sha256"] = _meta_digest(meta)
    f.write_text(_json.dumps(meta))
    old = V0Regressor.load(tmp_path / "m", encoder=model.encoder)
    assert not hasattr(old.head_, "pool_mix_")
    np.testing.assert_allclose(old.predict(q), p, atol=1e-9)


def _drop_key(d, key):
    if isinstance(d, dict):
        hit = d.pop(key, None) is not None
        return any([hit] + [_drop_key(v, key) for v in d.values()])
    if isinstance(d, list):
        return any(_drop_key(v, key) for v in d)
    return False


def test_unknown_policy_without_a_pool_prior_gets_the_global_mean(make_model, small_log):
    model = make_model(head="knn", fallback="global_mean").fit(small_log)
    q = pl.DataFrame({"policy": ["nobody", "nobody"], "prompt": ["add the numbers case 0", "new text"]})
    np.testing.assert_allclose(model.predict(q), small_log["score"].mean())


def test_auto_on_a_routing_log_uses_the_pool_prior(make_model):
    log = difficulty_log(n_prompts=200)
    model = make_model(head="auto", fallback="global_mean").fit(log.filter(pl.col("policy") != "d"))
    assert "logistic" in model.head_.members_
    prompts = log["prompt"].unique(maintain_order=True).to_list()[:40]
    p = model.predict(pl.DataFrame({"policy": ["x"] * 40, "prompt": prompts}))
    assert p.std() > 0.01


# -- suggest_prompts ---------------------------------------------------------------------------
@pytest.fixture
def pool(make_model):
    log = topic_log(n_prompts=200, policies=("a", "b", "c", "d"))
    return make_model(head="logistic").fit(log.filter(pl.col("policy") != "d")), log


def test_suggest_prompts_picks_distinct_candidates_over_topics(pool):
    model, log = pool
    cands = log.filter(pl.col("policy") == "d")["prompt"].to_list()
    picks = model.suggest_prompts("d", cands, 8)
    assert len(picks) == 8 and len(set(picks)) == 8 and set(picks) <= set(cands)
    assert len({t.split(" case")[0] for t in picks}) == 4  # spread over the four topics
    assert model.suggest_prompts("d", cands, 8) == picks  # deterministic
    assert model.suggest_prompts("d", cands + cands[:5], 8) == picks  # repeats count once


def test_suggest_prompts_designs_on_the_directions_the_solve_moves_along(pool, make_model):
    """With a pool's view the item vector is the pool's difficulty and each fitted policy's departure
    (what a new policy's in-context solve can learn from a few rows), not the history's topic
    directions: with them added, 10 and 30 picks ranked a held-out model's prompts worse than a random
    draw on RouterBench (benchmarks/onboarding.py). Without a pool's view the topics stand in."""
    from v0lite.heads._pool_items import pool_head
    from v0lite.heads._select import _N_TOPICS, item_features

    model, log = pool
    emb = model.index_.emb[:30]
    ph = pool_head(model.head_)
    z = ph.design_.transform(np.asarray(emb, np.float64))
    w0 = ph._population()[0]
    D = ph.coef_[ph.pool_codes()] - w0
    np.testing.assert_allclose(item_features(model.head_, model.index_, emb), np.column_stack([z @ w0, z @ D.T]))
    knn = make_model(head="knn").fit(log)
    assert item_features(knn.head_, knn.index_, emb).shape == (30, _N_TOPICS)


def test_suggest_prompts_refines_a_policy_with_outcomes(pool):
    model, log = pool
    d = log.filter(pl.col("policy") == "d")
    first = model.suggest_prompts("d", d["prompt"].to_list(), 10)
    model.add_history(d.filter(pl.col("prompt").is_in(first)))
    again = model.suggest_prompts("d", d["prompt"].to_list(), 10)
    assert not set(again) & set(first)  # what it already answered comes last
    with pytest.warns(V0liteWarning, match=r"1 of the 3 picks already have outcomes for 'd'.*Fix: pass candidates"):
        only_answered = model.suggest_prompts("d", first + again[:2], 3)
    assert only_answered[:2] == [t for t in only_answered if t in again[:2]]  # unanswered first


def test_suggest_prompts_bad_input(pool):
    model, _ = pool
    with pytest.raises(DataError, match="empty"):
        model.suggest_prompts("d", [], 3)
    with pytest.raises(ParameterError, match="n must be an integer >= 1"):
        model.suggest_prompts("d", ["x"], 0)
    with pytest.raises(DataError, match="row 1"):
        model.suggest_prompts("d", ["x", ""], 1)
    padded = r"'d ': a padded name would name another policy than 'd'\. Fix: policy='d'"
    with pytest.raises(ParameterError, match=padded):
        model.suggest_prompts("d ", ["x", "y"], 1)
    with pytest.raises(ParameterError, match=r"policy must be a non-empty name, got ''\. Fix"):
        model.suggest_prompts("", ["x", "y"], 1)
    with pytest.warns(V0liteWarning, match="all of them are returned, most informative first"):
        assert sorted(model.suggest_prompts("d", ["x", "y", "x"], 5)) == ["x", "y"]


def test_suggest_prompts_ranks_every_candidate_when_n_covers_them_all(pool):
    """Issue: with n >= the candidates, the input order came back (answered prompts first), not a ranking."""
    model, log = pool
    d = log.filter(pl.col("policy") == "d")["prompt"].to_list()
    first = model.suggest_prompts("d", d, 5)
    model.add_history(log.filter((pl.col("policy") == "d") & pl.col("prompt").is_in(first)))
    cands = first + [t for t in d if t not in first][:15]  # the answered ones first in the input
    every = model.suggest_prompts("d", cands, len(cands))
    assert sorted(every) == sorted(cands) and set(every[-5:]) == set(first)  # answered last
    assert every[:10] == model.suggest_prompts("d", cands, 10)  # the same greedy order, only longer
    assert model.suggest_prompts("d", cands[::-1], len(cands)) == every  # not the input order


def test_suggest_prompts_checks_its_seed_first(pool):
    model, log = pool
    cands = log.filter(pl.col("policy") == "d")["prompt"].to_list()
    for bad in (-1, "x", 1.5, True, None, 2**70):
        with pytest.raises(ParameterError, match=r"random_state must be an integer in \[0, 2\*\*31 - 16\]"):
            model.suggest_prompts("d", cands, 3, random_state=bad)
    assert model.suggest_prompts("d", cands, 3, random_state=np.int64(5)) == model.suggest_prompts(
        "d", cands, 3, random_state=5
    )


def test_suggest_prompts_works_with_a_head_without_a_pool(make_model, small_log):
    model = make_model(head="knn").fit(small_log)
    cands = small_log["prompt"].unique().to_list()
    picks = model.suggest_prompts("new-model", cands, 4)
    assert len(set(picks)) == 4


# -- the command line --------------------------------------------------------------------------
def test_onboard_cli(tmp_path, capsys, fake_minilm):
    from v0lite.cli import main
    from v0lite.log import write_log

    log = topic_log(n_prompts=80, policies=("a", "b", "c", "d"))
    hist = write_log(log.filter(pl.col("policy") != "d"), tmp_path / "hist.jsonl")
    cands = write_log(log.filter(pl.col("policy") == "d").select("prompt"), tmp_path / "cands.jsonl")
    out = tmp_path / "picked.jsonl"
    args = ["onboard", str(hist), "--policy", "d", "--candidates", str(cands), "--head", "logistic", "--quiet"]
    assert main([*args, "--n", "6", "--out", str(out)]) == 0
    got = pl.read_ndjson(out)
    assert got.height == 6 and got["rank"].to_list() == list(range(6))
    assert "6 of 80 candidate prompts" in capsys.readouterr().out
    assert main([*args, "--n", "0", "--out", str(out)]) == 2  # at parse time, before the fit
    assert "argument --n: 0 is below 1" in capsys.readouterr().err
    assert main([*args, "--n", "3", "--out", str(cands), "--force"]) == 1  # never overwrites its input
    assert f"is the input --candidates {cands}" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "picked2.jsonl"  # picked.jsonl holds the first pick now
    assert main([*args[:5], str(empty), "--n", "3", "--out", str(out)]) == 1
    assert "--candidates " + str(empty) + ": the file is empty" in capsys.readouterr().err
    blank = write_log(pl.DataFrame({"prompt": ["a real prompt", "  "]}), tmp_path / "blank.jsonl")
    assert main([*args[:5], str(blank), "--n", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "column 'prompt', row 1" in err and "Fix:" in err


def test_onboard_model_dir_adds_the_log_rows_it_does_not_hold_and_counts_what_it_holds(tmp_path, capsys, fake_minilm):
    """Issue: with --model-dir, LOG rows of a policy the model already knew were dropped, and the summary
    counted LOG's rows. Now LOG's rows the model does not hold join it (none twice) and the summary says
    how many outcomes of --policy the model holds."""
    from v0lite.cli import main
    from v0lite.log import write_log

    log = topic_log(n_prompts=60, policies=("a", "b", "c", "d"))
    d = log.filter(pl.col("policy") == "d")
    fitted = pl.concat([log.filter(pl.col("policy") != "d"), d.head(10), d.head(2)])  # two rows held twice
    hist = write_log(fitted, tmp_path / "fitted.jsonl")
    assert main(["fit", str(hist), "--model-dir", str(tmp_path / "m"), "--head", "logistic", "--quiet"]) == 0
    grown = write_log(pl.concat([fitted, d.slice(10, 25), d.head(1)]), tmp_path / "grown.jsonl")  # 26 new rows
    cands = write_log(log.select("prompt").unique(maintain_order=True), tmp_path / "cands.jsonl")
    args = ["onboard", "--policy", "d", "--candidates", str(cands), "--n", "4", "--out", str(tmp_path / "o.jsonl")]
    args.append("--force")  # each run replaces o.jsonl
    capsys.readouterr()
    assert main([*args, str(grown), "--model-dir", str(tmp_path / "m"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(38 outcomes in the model, 26 of them added from LOG)" in out  # 12 held + 26, none counted twice
    assert main([*args, str(hist), "--model-dir", str(tmp_path / "m"), "--quiet"]) == 0  # LOG = the fit log
    assert "(12 outcomes in the model, 0 of them added from LOG)" in capsys.readouterr().out
    # LOG without --policy's rows: the model still holds its 12 (it used to say "no outcomes in LOG")
    assert main([*args, str(write_log(fitted.filter(pl.col("policy") != "d"), tmp_path / "nod.jsonl")),
                 "--model-dir", str(tmp_path / "m"), "--quiet"]) == 0  # fmt: skip
    assert "(12 outcomes in the model, 0 of them added from LOG)" in capsys.readouterr().out
    assert main([*args[:2], "newbie", *args[3:], str(hist), "--model-dir", str(tmp_path / "m"), "--quiet"]) == 0
    assert "no outcomes in the model: estimated as the pool's view of each prompt" in capsys.readouterr().out
    # a head without the pool's view (knn) says what an unknown policy gets: the mean of all history
    assert main(["fit", str(hist), "--model-dir", str(tmp_path / "mk"), "--head", "knn", "--quiet"]) == 0
    assert main([*args[:2], "newbie", *args[3:], str(hist), "--model-dir", str(tmp_path / "mk"), "--quiet"]) == 0
    assert "no outcomes in the model: estimated as the mean of all history" in capsys.readouterr().out
    # a logistic head fitted on 2 policies has no pool's view: the average fitted model, said so
    two = write_log(fitted.filter(pl.col("policy").is_in(["a", "b"])), tmp_path / "two.jsonl")
    assert main(["fit", str(two), "--model-dir", str(tmp_path / "m2"), "--head", "logistic", "--quiet"]) == 0
    assert main([*args[:2], "newbie", *args[3:], str(two), "--model-dir", str(tmp_path / "m2"), "--quiet"]) == 0
    assert "estimated as the average fitted model (fewer than 3: no pool's view)" in capsys.readouterr().out
    # --head with --model-dir would be ignored (nothing is refitted): refused, naming both flags
    assert main([*args, str(hist), "--model-dir", str(tmp_path / "m"), "--head", "knn", "--quiet"]) == 1
    assert "--head knn with --model-dir" in capsys.readouterr().err
    # a repeated candidate prompt counts once, and the run says so
    twice = write_log(pl.concat([log.select("prompt").unique(maintain_order=True)] * 2), tmp_path / "twice.jsonl")
    argv = [*args, str(hist), "--model-dir", str(tmp_path / "m"), "--quiet"]
    argv[argv.index(str(cands))] = str(twice)
    assert main(argv) == 0
    assert "holds 60 repeated prompt row(s); each prompt counts once" in capsys.readouterr().err


def test_rows_not_held_is_a_multiset_difference(make_model):
    from v0lite.commands.onboard import _rows_not_held

    log = make_log(3, 10, steps=True)
    model = make_model().fit(pl.concat([log, log.head(2)]))  # rows 0 and 1 held twice
    grown = pl.concat([log.head(3), log.head(3), log.head(3), log.tail(4)])
    extra = _rows_not_held(model, grown)
    # rows 0, 1: held twice, logged three times -> their third copies; row 2: held once -> its second and third
    # copies; the tail: held. In LOG's order.
    assert extra.to_dicts() == pl.concat([log.slice(2, 1), log.head(3)]).to_dicts()
    other_step = log.head(1).with_columns(pl.col("step") + 100)
    assert _rows_not_held(model, other_step).height == 1  # another checkpoint's outcome is another row


def test_onboard_flags_are_checked_at_parse_time(tmp_path, capsys, guarantees):
    from v0lite.cli import main

    base = ["onboard", "log.jsonl", "--candidates", "c.jsonl", "--out", str(tmp_path / "o.jsonl")]
    cases = [
        ([*base, "--policy", "", "--n", "3"], "argument --policy: '' is empty"),
        ([*base, "--policy", "  ", "--n", "3"], "argument --policy: '  ' is empty"),
        ([*base, "--policy", "claude-v2 ", "--n", "3"], "argument --policy: 'claude-v2 ' has leading or trailing"),
        ([*base, "--policy", " claude-v2", "--n", "3"], "another model than 'claude-v2'; pass 'claude-v2'"),
        ([*base, "--policy", "x", "--n", "0"], "argument --n: 0 is below 1"),
        ([*base, "--policy", "x", "--n", "3", "--random-state", "-1"], "argument --random-state: -1 is below 0"),
        ([*base, "--policy", "x", "--n", "3", "--random-state", "x"], "argument --random-state: 'x' is not an integer"),
    ]
    guarantees.tick("bad-input cases tried", len(cases))
    for argv, needle in cases:
        assert main(argv) == 2, argv
        assert needle in capsys.readouterr().err, argv


def test_onboard_help_lists_its_flags(capsys):
    from v0lite.cli import main

    assert main(["onboard", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--policy", "--candidates", "--n", "--out"):
        assert flag in text


def test_a_new_policy_with_a_fitted_policys_history_is_treated_as_the_fitted_ones(make_model):
    """All of 'a''s rows under a new name: its predictions are a's (the pool's spread is a prior for few rows only).

    Kept at every n, the pool prior under-penalised how the new policy differs from the others, which
    the routing argmax reads (routerdc: a held-out model added with all its rows routed worse than before).
    """
    log = topic_log(n_prompts=300, policies=("a", "b", "c", "d"))
    prompts = sorted(log["prompt"].unique().to_list())
    test_prompts = set(prompts[::4])
    hist = log.filter(~pl.col("prompt").is_in(test_prompts))
    model = make_model(head="logistic", head_params={"alphas": [3.0]}).fit(hist)
    q_a = log.filter((pl.col("policy") == "a") & pl.col("prompt").is_in(test_prompts))
    model.add_history(_copy_of(hist, "a", "new"))
    got = model.predict(q_a.with_columns(pl.lit("new").alias("policy")))
    assert np.abs(got - model.predict(q_a)).max() < 0.05  # without the move to the fitted treatment: 0.20


def test_item_table_blocks_give_the_same_table(make_model, monkeypatch):
    import v0lite.heads._pool_items as pi

    log = difficulty_log(n_prompts=80)
    model = make_model(head="logistic").fit(log)
    head, index = model.head_, model.index_
    rows = np.arange(0, 80, 3)
    args = (head.decision, index, head.pool_codes(), index.emb[rows], np.zeros(len(rows), np.int64), rows, "any_step")
    whole = pi.item_table(*args)
    monkeypatch.setattr(pi, "_CHUNK_CELLS", 7)  # one prompt (4 fitted policies) per block
    lin, S, C = pi.item_table(*args)
    np.testing.assert_allclose(lin, whole[0])
    np.testing.assert_array_equal(C, whole[2])
    # neighbour sets agree up to near-tied similarities (BLAS round-off differs with the block's size):
    # at most one neighbour swapped, in few prompts
    diff = np.abs(S - whole[1])
    assert diff.max() <= 1.0 and (diff.max(1) > 1e-9).mean() < 0.1
    assert whole[2].min() == min(pi.K_POOL, 79)  # each policy's 32 nearest rows, its own prompt hidden


def test_thin_policies_are_those_far_below_the_median_when_enough_others_remain():
    from v0lite.heads._pool_items import THIN_SHARE, thin_policies

    assert thin_policies([1000, 1000, 1000, 1000, 30]).tolist() == [False] * 4 + [True]
    edge = int(THIN_SHARE * 1000)
    assert thin_policies([1000, 1000, 1000, edge]).tolist() == [False] * 4  # at the share: fitted
    assert thin_policies([1000, 1000, 1000, edge - 1])[3]
    assert not thin_policies([1000, 1000, 30, 30]).any()  # two left: too few for the pool's base
    assert not thin_policies([]).any()


def test_a_policy_fitted_from_a_few_rows_is_read_like_one_added_later(make_model, tmp_path):
    """A refit on the pool plus 12 rows of a new policy: the new policy is thin, so its predictions come
    from the pool's base and its rows, as after add_history, not from a per-policy fit on 12 rows."""
    log = difficulty_log(n_prompts=200, policies=("a", "b", "c", "d", "e"))
    prompts = log["prompt"].unique(maintain_order=True).to_list()
    test_prompts = set(prompts[1::5])
    train = log.filter(~pl.col("prompt").is_in(test_prompts))
    pool, new = train.filter(pl.col("policy") != "e"), train.filter(pl.col("policy") == "e").sample(12, seed=3)
    q = log.filter((pl.col("policy") == "e") & pl.col("prompt").is_in(test_prompts))
    refit = make_model(head="logistic").fit(pl.concat([pool, new]))
    head = refit.head_
    assert head.thin_.tolist() == [False, False, False, False, True]
    assert head.pool_codes().tolist() == [0, 1, 2, 3]
    added = make_model(head="logistic").fit(pool)
    added.add_history(new)
    p_refit, p_added = refit.predict(q), added.predict(q)
    assert np.abs(p_refit - p_added).max() < 0.05  # the same reading (the pool's fits differ a little)
    ease = np.array([EASE[TOPICS.index(t.split(" case")[0])] for t in q["prompt"].to_list()])
    head.thin_[:] = False  # the per-policy fit on its 12 rows instead
    refit.index_ = refit.index_.add([], np.zeros((0, refit.index_.dim), np.float32), [], [], [], [], [])
    p_own = refit.predict(q)
    assert np.corrcoef(p_refit, ease)[0, 1] > 0.95
    assert np.corrcoef(p_refit, ease)[0, 1] > np.corrcoef(p_own, ease)[0, 1] + 0.03
    # saved and loaded, it is still read as thin
    head.thin_[4] = True
    refit.save(tmp_path / "m")
    back = type(refit).load(tmp_path / "m", encoder=refit.encoder)
    assert back.head_.thin_.tolist() == [False, False, False, False, True]
    np.testing.assert_allclose(back.predict(q), p_refit, atol=1e-9)
    from v0lite.heads._pool_items import thin_mask  # what load reads the saved codes with

    assert thin_mask([4], 5).tolist() == [False] * 4 + [True]
    for bad in ([7], [-1], [True], "4", [4.0]):  # beyond the policies, or not a list of ints: refused
        with pytest.raises(ValueError, match="thin"):
            thin_mask(bad, 5)


def test_an_added_policys_own_row_is_hidden_from_its_prediction_like_a_fitted_policys(make_model, monkeypatch):
    """A policy added later, predicted on a prompt it answered with that prompt hidden (``exclude_own_prompt``, a
    cold prompt), does not read its answer, as a fitted policy's prediction does not. Its deviation from the pool's
    base was solved with the row; one Newton step without it (OwnRows) lands near the solve that never had it."""
    from v0lite.heads._deviation import OwnRows

    log = difficulty_log(n_prompts=120, policies=("a", "b", "c", "d", "e"))
    model = make_model(head="logistic").fit(log.filter(pl.col("policy") != "e"))
    rows = log.filter(pl.col("policy") == "e").sample(40, seed=2)
    base = model.index_
    model.add_history(rows)
    q = rows.select("policy", "prompt")
    hidden = model.predict(q, exclude_own_prompt=True)
    monkeypatch.setattr(OwnRows, "correction", lambda self, z, pr, st, ex: np.zeros(len(pr)))
    model.index_ = model.index_.add([], np.zeros((0, base.dim), np.float32), [], [], [], [], [])  # a fresh cache
    seen = model.predict(q, exclude_own_prompt=True)
    monkeypatch.undo()
    far, near = [], []
    for i in range(0, 40, 5):
        model.index_ = base
        model.add_history(rows.filter(pl.int_range(pl.len()) != i))
        without = model.predict(q[i], exclude_own_prompt=True)[0]
        far.append(abs(seen[i] - without))
        near.append(abs(hidden[i] - without))
    assert np.mean(near) < 0.25 * np.mean(far)


def test_a_new_policy_on_a_log_with_checkpoints_gets_finite_predictions(make_model):
    """Steps: the pool's base reads each fitted policy's eligible rows (steps <= the query's), and the mix is
    fitted on (prompt, step) pairs; an added policy at a later step, one at an early step and an unknown one
    all get finite probabilities."""
    log = make_log(n_policies=4, n_prompts=60, steps=True)
    model = make_model(head="logistic", fallback="global_mean").fit(log)
    assert model.head_.pool_mix_ is not None and np.isfinite(model.head_.pool_mix_).all()
    prompts = log["prompt"].unique(maintain_order=True).to_list()
    new = pl.DataFrame({"policy": ["new"] * 10, "prompt": prompts[:10], "score": [0.0, 1.0] * 5, "step": [7] * 10})
    model.add_history(new)
    steps = [7, 7, 7, 0, 0, 2, 1, 9]
    q = pl.DataFrame({"policy": ["new"] * 6 + ["other"] * 2, "prompt": prompts[10:16] + prompts[:2], "step": steps})
    p = model.predict(q)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_onboard_cli_warns_about_a_known_name_written_another_way(tmp_path, capsys, fake_minilm):
    """Probe V: `--policy A` for the history's 'a' was onboarded silently as a brand-new model."""
    from v0lite.cli import main
    from v0lite.log import write_log

    log = topic_log(n_prompts=40, policies=("a", "b", "c"))
    hist = write_log(log, tmp_path / "hist.jsonl")
    cands = write_log(log.select("prompt").unique(maintain_order=True), tmp_path / "cands.jsonl")
    args = ["onboard", str(hist), "--candidates", str(cands), "--head", "logistic", "--n", "2", "--quiet"]
    assert main([*args, "--policy", "A", "--out", str(tmp_path / "p1.jsonl")]) == 0
    assert "'A' differs from the known 'a' only by case, spaces or Unicode width" in capsys.readouterr().err
    assert main([*args, "--policy", "newbie", "--out", str(tmp_path / "p2.jsonl")]) == 0
    assert "differs from the known" not in capsys.readouterr().err
