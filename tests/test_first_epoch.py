"""The first-epoch scenario (v0lite.rl._first_epoch): the value model reads merged visits, selection is
scored per group."""

import json

import numpy as np
import polars as pl
from test_replay import RecordingModel

import v0lite.rl._first_epoch as FE
import v0lite.rl._replay as replay
from v0lite.rl import alloc_sim


class FitProbe(RecordingModel):
    """test_replay's clonable model that also records every frame it is fitted on (in ``fitted``, shared by
    its clones), with prompt-dependent predictions."""

    fitted: list = []

    def fit(self, X, y):
        FitProbe.fitted.append(X)
        return super().fit(X, y)

    def predict(self, X, exclude_own_prompt=False):
        # prompt-dependent, so that a group given another visit's prediction would be ranked differently
        return np.array([int(q[1:]) / 40 for q in X["prompt"].to_list()])


def _log(n_prompts=12, n_steps=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        {"policy": "pol", "prompt": f"q{i}", "step": t, "n": 8, "score": rng.binomial(8, 0.5) / 8}
        for t in range(n_steps)
        for i in range(n_prompts)
    ]
    return pl.DataFrame(rows)


def test_value_model_reads_merged_visits_and_groups_are_scored(monkeypatch):
    one = _log()
    # every visit of the first step is two groups (an all-wrong and an all-correct one), shuffled in the log
    twin = one.filter(pl.col("step") == 0).with_columns(pl.lit(0.0).alias("score"))
    log = pl.concat([one.with_columns(pl.lit(1.0).alias("score")), twin]).sample(fraction=1.0, shuffle=True, seed=3)
    monkeypatch.setattr(FitProbe, "fitted", [])
    res = alloc_sim(log, value_model=FitProbe(), fit_fraction=0.25, first_epoch_folds=3)
    fe = res["first_epoch"]
    first = FitProbe.fitted[1:]  # [0] is the replay's fit; then one refit per prompt group
    assert len(first) == 3
    for X in first:
        assert X.select("policy", "prompt", "step").is_unique().all()  # merged visits, no group twice
        assert set(X["step"].to_list()) == {0} and set(X["n"].to_list()) == {16}  # a visit's n: its groups'
    assert sum(X.height for X in first) == 2 * 12  # each prompt is in the fits of the other 2 of 3 groups
    assert fe["n_visits"] == fe["n_prompts"] == 12 and fe["n_groups"] == 2 * fe["n_visits"] == 24
    # no group is mixed (a merged 8/16 would be): no strategy finds a mixed group
    for key, entry in fe["strategies"].items():
        assert entry["mixed_groups_per_1000_rollouts"] == 0.0, key


def test_groups_default_to_the_visits_and_figures_do_not_change():
    log = _log(n_prompts=30, seed=1)
    v = replay._visits(log)
    a = FE.first_epoch(v, lambda: FitProbe(), folds=3, random_state=0)
    b = FE.first_epoch(v, lambda: FitProbe(), groups=replay._per_group(log, v), folds=3, random_state=0)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN (a ratio of none) equal too
    assert a["n_groups"] == a["n_visits"] == 30
