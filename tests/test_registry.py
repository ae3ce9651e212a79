"""Tests of v0lite._registry and of every table that uses it: one lookup, one error, duck typing."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from v0lite._registry import canonical, lookup, normalise
from v0lite.exceptions import ParameterError, V0liteError


def test_normalise_and_lookup():
    table = {"p_mixed": 1, "quality-target": 2}
    assert normalise(" P-Mixed ") == "p_mixed"
    assert lookup(table, "p-mixed", "value") == 1 and lookup(table, "quality_target", "value") == 2
    assert canonical(table, "QUALITY_TARGET", "value") == "quality-target"
    with pytest.raises(ParameterError, match=r"^unknown value 'x'; valid names: \['p_mixed', 'quality-target'\]\.$"):
        lookup(table, "x", "value")


def test_parameter_error_is_a_value_error_and_a_v0lite_error():
    assert issubclass(ParameterError, ValueError) and issubclass(ParameterError, V0liteError)


def _unknown_calls():
    from v0lite.data import convert
    from v0lite.heads.base import get_head_class
    from v0lite.rl import allocate, get_selector
    from v0lite.routing import get_cost_model, get_strategy

    return {
        "head": lambda: get_head_class("nope"),
        "routing strategy": lambda: get_strategy("nope"),
        "cost model": lambda: get_cost_model("nope"),
        "selection strategy": lambda: get_selector("nope"),
        "value": lambda: allocate([0.5], 4, value="nope"),
        "format": lambda: convert("nope", "in", "out"),
    }


@pytest.mark.parametrize("kind", list(_unknown_calls()))
def test_every_table_raises_the_same_error(kind):
    with pytest.raises(ParameterError, match=rf"^unknown {kind} 'nope'; valid names: \[.+\]\.$"):
        _unknown_calls()[kind]()


def test_both_spellings_are_read():
    from v0lite.rl import PMixedSelector, RolloutPlanner, allocate, get_selector
    from v0lite.routing import QualityTargetStrategy, get_strategy

    assert isinstance(get_strategy("quality_target"), QualityTargetStrategy)
    assert isinstance(get_selector("p-mixed"), PMixedSelector)
    p = [0.1, 0.5, 0.9]
    assert allocate(p, 12, value="p-mixed").tolist() == allocate(p, 12, value="p_mixed").tolist()

    class Model:
        def predict(self, X):
            return np.linspace(0.05, 0.95, X.height)

        def add_history(self, X, y):  # a planner's value model needs both (checked when it is built)
            return self

    prompts = [f"q{i}" for i in range(8)]
    plans = [
        RolloutPlanner(Model(), strategy=s, value=v, random_state=0).plan(prompts, step=0)
        for s, v in (("p-mixed", "p_mixed"), ("p_mixed", "p-mixed"))
    ]
    assert plans[0].kept_prompts == plans[1].kept_prompts
    assert np.asarray(plans[0].n_rollouts).tolist() == np.asarray(plans[1].n_rollouts).tolist()


def test_objects_with_the_protocol_pass_through_without_subclassing():
    from v0lite.rl import get_selector
    from v0lite.routing import Router, get_cost_model, get_strategy

    class Cheapest:  # no v0lite base class
        name, knob_name, default_knob = "cheapest", "unused", 0.0

        def choose(self, P, C, knob):
            return np.asarray(C).argmin(axis=1)

        def knob_grid(self, P, C, n=64):
            return np.zeros(1)

    class Flat:
        needs_costs = False

        def fit(self, policies, costs, prices, embed):
            self.mean_ = np.arange(1.0, len(policies) + 1.0)
            return self

        def predict(self, prompts, embed):
            return np.tile(self.mean_, (len(prompts), 1))

    class Last:
        def select(self, p, m, *, random_state=None):
            return np.arange(len(p))[::-1][:m]

    class Model:
        def predict(self, X):
            return np.full(X.height, 0.5)

    s, flat = Cheapest(), Flat()
    assert get_strategy(s) is s and get_selector(Last()).select([0.1, 0.2, 0.3], 2).tolist() == [2, 1]
    assert isinstance(get_cost_model(flat), Flat) and get_cost_model(flat) is not flat  # a copy gets fitted
    r = Router(Model(), policies=["a", "b"], strategy=s, cost_model=flat).fit()
    assert r.route(["x", "y"]).tolist() == ["a", "a"] and not hasattr(flat, "mean_")
    with pytest.raises(ParameterError, match="or an object with choose\\(\\), knob_grid\\(\\)"):
        get_strategy(object())


def test_a_custom_converter_and_head_class_pass_through(tmp_path):
    from v0lite.data import convert
    from v0lite.heads.base import BaseHead, get_head_class

    def mine(src):
        return pl.DataFrame({"policy": ["a"], "prompt": [str(src)], "score": [1.0]})

    out = convert(mine, "hello", tmp_path / "log")
    assert out.suffix == ".jsonl" and "hello" in out.read_text()

    class MyHead(BaseHead):
        name = "mine"

    assert get_head_class(MyHead) is MyHead
