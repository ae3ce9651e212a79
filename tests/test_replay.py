import argparse
import json
import math

import numpy as np
import polars as pl
import pytest

import v0lite.rl as rl_pkg
import v0lite.rl._replay as replay
from v0lite.commands import alloc as alloc_cmd
from v0lite.exceptions import DataError, V0liteError, V0liteWarning
from v0lite.rl import alloc_sim
from v0lite.rl._scoring import STRATEGIES


def _log(n_prompts=60, n_steps=12, seed=0, visit_prob=0.85):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 2, n_prompts)
    rows = {"policy": [], "prompt": [], "step": [], "n": [], "score": [], "_p": []}
    for t in range(n_steps):
        p = 1 / (1 + np.exp(-(base + 0.15 * t)))
        seen = rng.random(n_prompts) < visit_prob
        for i in np.flatnonzero(seen):
            rows["policy"].append("pol")
            rows["prompt"].append(f"prompt {i}")
            rows["step"].append(t)
            rows["n"].append(8)
            rows["score"].append(rng.binomial(8, p[i]) / 8)
            rows["_p"].append(p[i])
    return pl.DataFrame(rows)


class FakeModel:
    """Noisy lookup of the true p; records history to check that no step >= t is ever seen."""

    def __init__(self, truth, noise=0.05, seed=0, with_cold=True):
        self.truth = truth  # (prompt, step) -> p
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.max_step_added = -math.inf
        self.added_steps = []
        self.predict_log = []  # (min query step, max step added so far, exclude flag)
        if not with_cold:
            self.predict = self._predict_warm_only

    def fit(self, X, y):
        assert "score" not in X.columns and len(y) == X.height
        self._add(X)
        return self

    def add_history(self, X, y):
        assert "score" not in X.columns and len(y) == X.height
        self._add(X)
        return self

    def _add(self, X):
        steps = X["step"].to_list()
        self.added_steps.append(sorted(set(steps)))
        self.max_step_added = max(self.max_step_added, max(steps))

    def _lookup(self, X):
        assert set(X.columns) == {"policy", "prompt", "step"}
        qmin = min(X["step"].to_list())
        assert self.max_step_added < qmin, "look-ahead: history at or after the query step"
        p = np.array([self.truth[(q, s)] for q, s in zip(X["prompt"].to_list(), X["step"].to_list())])
        return np.clip(p + self.rng.normal(0, self.noise, p.size), 0, 1), qmin

    def predict(self, X, *, exclude_own_prompt=False):
        p, qmin = self._lookup(X)
        self.predict_log.append((qmin, self.max_step_added, exclude_own_prompt))
        return np.full(p.size, 0.5) if exclude_own_prompt else p

    def _predict_warm_only(self, X):
        p, qmin = self._lookup(X)
        self.predict_log.append((qmin, self.max_step_added, False))
        return p


def _truth(log):
    return {(q, s): p for q, s, p in zip(log["prompt"].to_list(), log["step"].to_list(), log["_p"].to_list())}


def test_no_look_ahead_and_batched_predictions():
    log = _log()
    model = FakeModel(_truth(log))
    res = alloc_sim(log.drop("_p"), value_model=model, fit_fraction=0.25)
    assert res["fit_steps"] == 3 and res["fit_cut_step"] == 2
    assert res["n_steps_evaluated"] == 9
    # fitted once on steps 0..2, then exactly one add per later step, in order, never the current one
    assert model.added_steps[0] == [0, 1, 2]
    assert model.added_steps[1:] == [[t] for t in range(3, 11)]
    # one warm and one cold call per evaluated step, each strictly after all added history
    assert len(model.predict_log) == 18
    for qmin, added, _ in model.predict_log:
        assert added == qmin - 1
    assert [e for *_, e in model.predict_log] == [False, True] * 9


def test_scores_make_sense_with_good_model():
    log = _log(n_prompts=120, n_steps=10, seed=1)
    res = alloc_sim(log.drop("_p"), value_model=FakeModel(_truth(log), noise=0.02), fit_fraction=0.2)
    share = {
        k: res[f"keep_half_mixed_share_{k}"] for k in ("warm", "cold", "random", "last_visit", "mean_last3", "oracle")
    }
    assert all(0 <= v <= 1 for v in share.values())
    assert share["oracle"] >= share["warm"] > share["random"]
    assert abs(share["cold"] - share["random"]) < 0.15  # the fake's cold prediction is a constant
    assert share["last_visit"] > share["random"]
    eff = res["effective_groups_per_1000_rollouts"]
    assert res["effective_groups_per_1000_rollouts_oracle"] >= eff - 1e-9
    assert 0 < res["effective_groups_per_1000_rollouts_uniform"] <= 1000 / 2
    for g in (2, 4):
        assert res[f"baseline_mse_g{g}_fused"] < res[f"baseline_mse_g{g}_mean"]
    assert res["baseline_mse_g4_mean"] < res["baseline_mse_g2_mean"]
    assert res["seconds_total"] >= res["seconds_predict"] >= 0


def test_seeded_and_fixed_prior_strength():
    log = _log(seed=2).drop("_p")
    truth = _truth(_log(seed=2))
    a = alloc_sim(log, value_model=FakeModel(truth), random_state=5)
    b = alloc_sim(log, value_model=FakeModel(truth), random_state=5)
    assert a["keep_half_mixed_share_random"] == b["keep_half_mixed_share_random"]
    assert a["baseline_mse_g2_fused"] == b["baseline_mse_g2_fused"]
    c = alloc_sim(log, value_model=FakeModel(truth), prior_strength=3.0)
    assert c["prior_strength_mean"] == 3.0


def test_model_without_cold_support_gives_nan_and_warns():
    log = _log()
    with pytest.warns(V0liteWarning, match="exclude_own_prompt"):
        res = alloc_sim(log.drop("_p"), value_model=FakeModel(_truth(log), with_cold=False))
    assert math.isnan(res["keep_half_mixed_share_cold"])
    assert math.isnan(res["effective_groups_per_1000_rollouts_cold"])
    assert not math.isnan(res["keep_half_mixed_share_warm"])


def test_duplicate_rows_are_merged_and_history_baselines_are_leak_free():
    log = pl.DataFrame(
        {
            "policy": ["p"] * 6,
            "prompt": ["a", "a", "a", "b", "a", "b"],
            "step": [0, 0, 1, 1, 2, 2],
            "n": [2, 6, 8, 8, 8, 8],
            "score": [1.0, 0.0, 0.5, 1.0, 0.25, 0.0],
        }
    )
    v = replay._visits(log)
    a = v.filter(pl.col("prompt") == "a").sort("step")
    assert a["score"].to_list() == [0.25, 0.5, 0.25]
    assert a["last_visit"].to_list()[1:] == [0.25, 0.5]
    assert a["mean_last3"].to_list()[2] == pytest.approx(0.375)
    b = v.filter(pl.col("prompt") == "b").sort("step")
    assert b["last_visit"].to_list()[0] == pytest.approx(0.25)  # unseen: mean of earlier steps
    assert b["last_visit"].to_list()[1] == 1.0
    # the non-causal ceiling reference: n-weighted mean of the prompt's other visits, future included
    assert a["other_visits_mean"].to_list() == pytest.approx([(4 + 2) / 16, (2 + 2) / 16, (2 + 4) / 16])
    assert b["other_visits_mean"].to_list() == pytest.approx([0.0, 1.0])


def test_errors():
    log = _log().drop("_p")
    with pytest.raises(DataError, match="step"):
        alloc_sim(log.drop("step"), value_model=FakeModel({}))
    with pytest.raises(DataError, match="fit_fraction"):
        alloc_sim(log.filter(pl.col("step") < 1), value_model=FakeModel({}))
    # 4 steps: 0.9 fits on all 4; the fix names the largest fraction that leaves one to replay
    with pytest.raises(DataError, match=r"fitting on 4 leaves none to replay\. Fix: pass fit_fraction=0\.75 or less"):
        alloc_sim(log.filter(pl.col("step") < 4), value_model=FakeModel({}), fit_fraction=0.9)
    with pytest.raises(V0liteError):
        alloc_sim(log, value_model=FakeModel({}), fit_fraction=1.5)
    with pytest.raises(V0liteError):
        alloc_sim(log, value_model=FakeModel({}), head="knn")
    with pytest.raises(V0liteError, match="value_model or encoder"):
        alloc_sim(log, value_model=FakeModel({}), encoder="some/folder")


@pytest.mark.parametrize("with_n", [True, False])
def test_cli_alloc_sim_writes_json_with_nulls(tmp_path, monkeypatch, capsys, with_n):
    log = _log()
    path = tmp_path / "hist.jsonl"
    log.drop("_p" if with_n else ["_p", "n"]).write_ndjson(path)
    truth = _truth(log)
    real = replay.alloc_sim

    def fake_sim(data, *, head=None, encoder=None, **kw):
        assert head == "knn" and encoder == "my/encoder"
        return real(data, value_model=FakeModel(truth, with_cold=False), **kw)

    monkeypatch.setattr(rl_pkg, "alloc_sim", fake_sim)
    parser = argparse.ArgumentParser()
    alloc_cmd.register(parser.add_subparsers())
    out = tmp_path / "res.json"
    flags = ["--head", "knn", "--fit-fraction", "0.2", "--encoder", "my/encoder"]
    args = parser.parse_args(["alloc-sim", str(path), "--json", str(out), *flags])
    with pytest.warns(V0liteWarning):
        assert args.func(args) == 0
    captured = capsys.readouterr()
    printed = captured.out
    # a log without n: the group size assumed is said, in the flag's terms
    note = f"HISTORY {path} has no 'n' column: each row is read as the mean of --rollouts-per-prompt 8"
    assert (note in captured.err) is not with_n
    # the compact table: one row per strategy, the references labelled, the best causal one marked
    assert "v0_warm" in printed and "dynamic_sampling" in printed and "NOT CAUSAL" in printed
    assert sum(line.startswith("* ") for line in printed.splitlines()) == 1
    res = json.loads(out.read_text())
    assert res["keep_half_mixed_share_cold"] is None
    assert res["fit_steps"] == 3 and isinstance(res["keep_half_mixed_share_warm"], float)
    assert isinstance(res["effective_groups_per_1000_rollouts"], float)
    assert set(res["strategies"]) == {key for key, *_ in STRATEGIES}


def test_own_counts_are_decayed_and_leak_free():
    log = pl.DataFrame(
        {
            "policy": ["p"] * 5,
            "prompt": ["a", "b", "a", "a", "b"],
            "step": [0, 0, 1, 3, 3],
            "n": [4] * 5,
            "score": [1.0, 0.0, 0.5, 0.25, 1.0],
        }
    )
    v = replay._visits(log)
    own = replay._own_counts(v, (0.5, 1.0))
    a3 = v.with_row_index().filter((pl.col("prompt") == "a") & (pl.col("step") == 3))["index"][0]
    a0 = v.with_row_index().filter((pl.col("prompt") == "a") & (pl.col("step") == 0))["index"][0]
    assert own[:, :, a0].tolist() == [[0.0, 0.0], [0.0, 0.0]]  # nothing before the first visit
    # steps 0 (4/4) and 1 (2/4) seen from step 3: decay 0.5 -> 4 * 0.125 + 2 * 0.25
    np.testing.assert_allclose(own[0, :, a3], [4 * 0.125 + 2 * 0.25, 4 * 0.125 + 4 * 0.25])
    np.testing.assert_allclose(own[1, :, a3], [6.0, 8.0])


def test_strategy_variants_reported_and_predictions_returned():
    log = _log(n_prompts=80, n_steps=10, seed=3)
    res = alloc_sim(
        log.drop("_p"), value_model=FakeModel(_truth(log), noise=0.05), fit_fraction=0.2, return_predictions=True
    )
    for name in ("warm_point", "cold_point", "posterior", "history"):
        assert 0 <= res[f"keep_half_mixed_share_{name}"] <= 1
        assert res[f"effective_groups_per_1000_rollouts_{name}"] > 0
    assert 0.5 <= res["posterior_decay_mean"] <= 1.0
    pred = res["predictions"]
    assert {"warm", "cold", "score", "n", "step"} <= set(pred.columns) and pred.height == res["n_visits_evaluated"]
    # rescoring the returned predictions reproduces the scores
    again = replay.score_predictions(pred)
    assert again["keep_half_mixed_share_warm"] == pytest.approx(res["keep_half_mixed_share_warm"])
    assert again["effective_groups_per_1000_rollouts"] == pytest.approx(res["effective_groups_per_1000_rollouts"])


def test_ceiling_reference_and_max_step():
    log = _log(n_prompts=120, n_steps=10, seed=4)
    res = alloc_sim(log.drop("_p"), value_model=FakeModel(_truth(log), noise=0.3), fit_fraction=0.2)
    # knowing each prompt's other visits beats a noisy model and chance
    assert res["keep_half_mixed_share_ceiling"] > res["keep_half_mixed_share_random"]
    assert res["keep_half_mixed_share_ceiling"] <= res["keep_half_mixed_share_oracle"]
    assert 0 < res["effective_groups_per_1000_rollouts_ceiling"] <= res["effective_groups_per_1000_rollouts_oracle"]
    short = alloc_sim(log.drop("_p"), value_model=FakeModel(_truth(log)), fit_fraction=0.2, max_step=6)
    assert short["n_steps_evaluated"] == 5 and short["fit_cut_step"] == 1  # steps 0..6: fit on 0..1
    pred = alloc_sim(
        log.drop("_p"), value_model=FakeModel(_truth(log)), fit_fraction=0.2, max_step=6, return_predictions=True
    )["predictions"]
    assert pred["step"].max() == 6
    with pytest.raises(DataError, match="max_step"):
        alloc_sim(log.drop("_p"), value_model=FakeModel({}), max_step=-1)


def test_default_value_model_is_the_gbdt_head(monkeypatch):
    import v0lite.estimator as est

    log = _log()
    truth = _truth(log)
    made = []

    def fake_regressor(*, head=None, encoder=None, **kw):
        made.append((head, encoder))
        return FakeModel(truth)

    monkeypatch.setattr(est, "V0Regressor", fake_regressor)
    alloc_sim(log.drop("_p"), fit_fraction=0.25)
    alloc_sim(log.drop("_p"), fit_fraction=0.25, head="knn", encoder="my/encoder")
    assert made == [(replay.DEFAULT_HEAD, None), ("knn", "my/encoder")] and replay.DEFAULT_HEAD == "gbdt"


# --------------------------------------------------------------------------- literature metrics
from v0lite.rl import _baselines as B  # noqa: E402
from v0lite.rl import _first_epoch as FE  # noqa: E402


def test_every_strategy_reported_with_the_literature_figures():
    log = _log(n_prompts=80, n_steps=10, seed=3)
    res = alloc_sim(
        log.drop("_p"),
        value_model=FakeModel(_truth(log), noise=0.05),
        fit_fraction=0.2,
        return_predictions=True,
        first_epoch_folds=0,
    )
    st = res["strategies"]
    for key in ("v0_warm", "v0_cold", "dynamic_sampling", "greso", "mopps", "uniform", "ceiling"):
        assert 0 <= st[key]["keep_half_mixed_share"] <= 1 and st[key]["rollouts_per_mixed_group"] >= 8
        assert 0 <= st[key]["zero_advantage_avoided"] <= 1
    assert st["v0_warm"]["keep_half_mixed_share"] == pytest.approx(res["keep_half_mixed_share_warm"])
    assert st["uniform"]["allocation_mixed_groups_per_1000_rollouts"] == pytest.approx(
        res["effective_groups_per_1000_rollouts_uniform"]
    )
    assert not st["ceiling"]["causal"] and not st["oracle"]["causal"] and st["v0_warm"]["causal"]
    # dynamic sampling rolls out every evaluated visit: n x visits / mixed visits, by hand
    pred = res["predictions"]
    n_mixed = int(((pred["score"] > 0) & (pred["score"] < 1)).sum())
    assert st["dynamic_sampling"]["rollouts_per_mixed_group"] == pytest.approx(8 * pred.height / n_mixed)
    assert st["dynamic_sampling"]["zero_advantage_avoided"] == 0
    assert st["dynamic_sampling"]["dynamic_sampling_ratio"] == 1
    # a good model's selection costs fewer rollouts per mixed group than rolling out everything
    assert st["v0_warm"]["dynamic_sampling_ratio"] > 1.2 > st["random"]["dynamic_sampling_ratio"]
    assert st["oracle"]["rollouts_per_mixed_group"] <= st["v0_warm"]["rollouts_per_mixed_group"]
    assert 0.5 < st["greso_rule"]["rolled_out_share"] <= 1
    assert st["greso"]["rolled_out_share"] == pytest.approx(0.5, abs=0.01)


def test_selection_tally_by_hand():
    t = B.SelectionTally()
    t.add(np.array([True, True, False, False]), np.array([True, False, True, False]), 8)  # 16 rollouts, 1 mixed
    t.add(np.array([True, False]), np.array([True, True]), 8)  # 8 rollouts, 1 mixed
    f = t.figures()
    assert f["rollouts_per_mixed_group"] == 12.0 and f["mixed_groups_per_1000_rollouts"] == pytest.approx(1000 / 12)
    assert f["keep_half_mixed_share"] == 0.75  # (0.5 + 1) / 2, averaged over steps
    assert f["zero_advantage_avoided"] == 0.5 and f["rolled_out_share"] == 0.5
    e = B.strategy_entry(t, "x", True, dynamic_rpm=24.0)
    assert e["dynamic_sampling_ratio"] == 2.0 and math.isnan(e["allocation_mixed_groups_per_1000_rollouts"])


def test_greso_and_mopps_are_seeded_and_behave():
    log = _log(n_prompts=80, n_steps=10, seed=3).drop("_p")
    truth = _truth(_log(n_prompts=80, n_steps=10, seed=3))
    runs = [
        alloc_sim(log, value_model=FakeModel(truth), fit_fraction=0.2, random_state=s, first_epoch_folds=0)
        for s in (1, 1, 2)
    ]
    figs = [
        {k: (v["rollouts_per_mixed_group"], v["keep_half_mixed_share"]) for k, v in r["strategies"].items()}
        for r in runs
    ]
    for key in ("greso", "greso_rule", "mopps"):
        assert figs[0][key] == figs[1][key]
    assert any(figs[0][k] != figs[2][k] for k in ("greso_rule", "mopps"))
    streak, easy = B.zero_variance_streaks(
        np.array([0, 1, 0, 1, 0]), np.array([0, 0, 1, 1, 2]), np.array([0.0, 0.5, 0.0, 1.0, 0.5])
    )
    assert streak.tolist() == [0, 0, 1, 0, 2] and easy.tolist() == [False, False, False, False, False]
    rule = B.GresoRule(p_start=0.5, adjust=0.1)
    assert rule.keep_probability(np.array([0, 2]), np.array([False, False])).tolist() == [1.0, 0.25]
    rule.adapt(np.array([0.0, 0.0, 0.0, 0.5]))  # 75% all-wrong > its target (1/6): re-check hard ones less
    assert rule.p_hard_ == pytest.approx(0.4) and rule.p_easy_ == pytest.approx(0.6)
    with pytest.raises(ValueError):
        B.GresoRule(p_start=0)
    rng = np.random.default_rng(0)
    sc = np.mean([B.mopps_scores(np.array([4.0, 0.0]), np.array([8.0, 40.0]), rng) for _ in range(50)], axis=0)
    assert sc[0] > sc[1]  # a prompt at 4/8 draws near 0.5, one at 0/40 does not


class RecordingModel:
    """Clonable value model (scikit-learn ``clone`` copies it) that remembers the prompts it was fitted on."""

    def __init__(self, level=0.5):
        self.level = level

    def get_params(self, deep=True):
        return {"level": self.level}

    def set_params(self, **kw):
        self.level = kw.get("level", self.level)
        return self

    def fit(self, X, y):
        self.prompts_ = set(X["prompt"].to_list())
        self.mean_ = float(np.mean(y))
        return self

    def add_history(self, X, y):
        self.prompts_ |= set(X["prompt"].to_list())
        return self

    def predict(self, X, exclude_own_prompt=False):
        return np.full(X.height, self.mean_)


def test_first_epoch_never_reads_the_prompts_own_rows():
    log = _log(n_prompts=50, n_steps=6, seed=1).drop("_p")
    v = replay._visits(log)
    seen = []

    class Probe(RecordingModel):
        def predict(self, X, exclude_own_prompt=False):
            asked = set(X["prompt"].to_list())
            assert not asked & self.prompts_  # never fitted on the prompts it predicts
            seen.append(asked)
            return np.full(X.height, self.mean_)

    res = FE.first_epoch(v, lambda: Probe(), folds=5, random_state=0)
    first = set(v.filter(pl.col("step") == 0)["prompt"].to_list())
    assert set().union(*seen) == first and len(seen) == 5  # every first visit predicted exactly once
    assert res["step"] == 0 and res["n_prompts"] == len(first)
    for key in ("v0_first_epoch", "random", "dynamic_sampling"):
        assert res["strategies"][key]["rollouts_per_mixed_group"] >= 8
    # through alloc_sim: a clonable model gives the scenario; one without get_params warns and skips it
    out = alloc_sim(log, value_model=RecordingModel(), fit_fraction=0.2)
    assert out["first_epoch"]["folds"] == 5 and "v0_first_epoch" in out["first_epoch"]["strategies"]
    with pytest.warns(V0liteWarning, match="first-epoch"):
        assert (
            alloc_sim(log, value_model=FakeModel(_truth(_log(n_prompts=50, n_steps=6, seed=1))), fit_fraction=0.2)[
                "first_epoch"
            ]
            is None
        )
    with pytest.raises(ValueError):
        FE.first_epoch(v, lambda: Probe(), folds=1)
