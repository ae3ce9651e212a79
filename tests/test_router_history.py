"""The Router online: ``add_history`` joins a new model to the pool, prices come from cost rows or
``set_prices``, and every unpriced or ignored price is warned about, never dropped silently."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from tests.test_router import PRICES3, FakeEmbedder, FakeValueModel, _fitted_v0, _log
from v0lite.exceptions import DataError, UnpricedPolicyWarning, V0liteError, V0liteWarning
from v0lite.routing import (
    Router,
)

# --------------------------------------------------------------------------- online: add_history


def test_router_add_history_new_model_joins_the_pool_and_is_routed_to(tmp_path):
    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), k=4).fit(log)
    prompts = [f"new level {d}" for d in range(10)]
    before = r.route(prompts, lam=0.0).tolist()
    # a new, cheap model that solves everything: once its outcomes arrive it wins at lam=0 on price ties
    rows = pl.DataFrame(
        {"policy": ["star"] * 20, "prompt": [f"q{i} level {i % 10}" for i in range(20)], "score": [1.0] * 20}
    )
    r.add_history(rows, prices={"star": 0.05})
    assert r.policies_[-1] == "star" and r.added_prices_ == {"star": 0.05}
    P, C = r.predict_matrix(prompts)
    assert P.shape == C.shape == (10, 4) and np.allclose(C[:, -1], 0.05)
    after = r.route(prompts, lam=1.0).tolist()
    assert set(after) == {"star"} and after != before
    # saved and loaded: the joined model and its price come back
    r.save(tmp_path / "router")
    back = Router.load(tmp_path / "router", embedder=FakeEmbedder())
    assert back.policies_ == r.policies_ and back.added_prices_ == r.added_prices_
    np.testing.assert_array_equal(back.predict_matrix(prompts)[1], C)


def test_router_set_prices_replaces_learned_costs_and_keeps_joined_columns():
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    rows = pl.DataFrame({"policy": ["star"] * 4, "prompt": [f"q{i} level {i}" for i in range(4)], "score": [1.0] * 4})
    r.add_history(rows, prices={"star": 0.05})
    prompts = ["new level 2", "new level 7"]
    P0 = r.predict_matrix(prompts)[0]
    with pytest.raises(DataError, match=r"no price for 1 of the 4 pool models: \['star'\]"):
        r.set_prices({"big": 1.0, "mid": 0.5, "small": 0.1})
    assert r.added_prices_ == {"star": 0.05}  # a refused call changes nothing
    with pytest.raises(DataError, match=r"got one str \('star'\)\. Fix: join_costs\(\['star'\]\)"):
        r.join_costs("star")
    for bad in ("0.5", True):  # float() would read them as 0.5 and 1.0
        with pytest.raises(DataError, match=r"prices\['big'\] = .* is not a number"):
            r.set_prices({"big": bad, "mid": 0.5, "small": 0.1, "star": 0.2})
    with pytest.warns(V0liteWarning, match=r"which price nothing: \['other'\]"):  # kept, and said
        assert r.set_prices({"big": 1.0, "mid": 0.5, "small": 0.1, "star": 0.2, "other": 9}) is r
    P, C = r.predict_matrix(prompts)
    np.testing.assert_array_equal(P, P0)  # only the cost side moves
    np.testing.assert_allclose(C, np.tile([1.0, 0.5, 0.1, 0.2], (2, 1)))
    assert r.policies_ == ["big", "mid", "small", "star"] and r.added_prices_ == {"star": 0.2}


def test_router_add_history_prices_from_cost_rows_or_warns_and_changes_nothing_on_error():
    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), k=4).fit(log)
    n0 = vm.n_history_
    rows = pl.DataFrame({"policy": ["c1", "c1"], "prompt": ["q1 level 1", "q2 level 2"], "score": [1.0, 0.0]})
    r.add_history(rows.with_columns(pl.lit(0.2).alias("cost")))
    assert r.added_prices_ == {"c1": pytest.approx(0.2)} and vm.n_history_ == n0 + 2
    with pytest.warns(V0liteWarning, match="no known cost"):
        r.add_history(rows.with_columns(pl.lit("c2").alias("policy")))
    assert "c2" not in r.policies_ and vm.n_history_ == n0 + 4  # its outcomes still reach the value model
    # a bad row: nothing changes, neither the pool nor the value model
    bad = rows.with_columns(pl.Series("score", [1.0, 7.0]), pl.lit("c3").alias("policy"))
    with pytest.raises(DataError, match="score"):
        r.add_history(bad, prices={"c3": 0.1})
    assert "c3" not in r.policies_ and vm.n_history_ == n0 + 4
    with pytest.raises(V0liteError, match="add_history"):
        Router(FakeValueModel(), embedder=FakeEmbedder(), k=4).fit(log).add_history(rows, prices={"c1": 1.0})


def test_router_join_costs_is_add_historys_rule_and_the_warning_names_every_unpriced_model():
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    known = r.policies_[0]
    rows = pl.DataFrame({"policy": ["c1", "c2"], "prompt": ["q1 level 1", "q2 level 2"], "score": [1.0, 0.0]})
    joining, unpriced = r.join_costs(
        [known, "c1", "c2", "c3"], {"c3": 0.4}, log=rows.with_columns(pl.Series("cost", [0.2, None]))
    )
    assert joining == {"c1": pytest.approx(0.2), "c3": 0.4} and unpriced == ["c2"]  # the pool's own are skipped
    with pytest.warns(UnpricedPolicyWarning, match=r"prices=\{'c1': <cost per call>, 'c2': <cost per call>\}"):
        r.add_history(rows)
    assert r.policies_[-1] != "c2" and r.join_costs(["c1"]) == ({}, ["c1"])
    with pytest.raises(DataError, match="price"):
        r.join_costs(["c4"], {"c4": -1.0})


def test_router_fit_without_a_log_pools_the_priced_policies_it_has_history_for():
    """Issue: a fitted policy without a price vanished silently; a priced name without history (a typo, a model
    still to come) joined the pool, and route() failed later. Now the first is named in a warning and the second
    waits for its outcomes, joining through add_history at the router's price."""
    log = _log()
    vm = _fitted_v0(log)  # knows big, mid, small
    prices = {"big": 1.0, "mid": 0.4, "later": 0.05}
    with pytest.warns(V0liteWarning) as caught:
        r = Router(vm, cost_model="fixed", prices=prices).fit()
    assert "['small'] have history in the value model but no price" in str(caught[0].message)
    assert "prices={'small': <cost per call>}" in str(caught[0].message)
    assert any("which price nothing: ['later']" in str(w.message) for w in caught)  # kept, and said
    assert r.policies_ == ["big", "mid"]
    assert r.route(["new level 3"]).tolist() in (["big"], ["mid"])  # routes, no unknown-policy error
    rows = pl.DataFrame(
        {"policy": ["later"] * 3, "prompt": ["q1 level 1", "q2 level 2", "q3 level 3"], "score": [1.0] * 3}
    )
    r.add_history(rows)
    assert r.policies_ == ["big", "mid", "later"] and r.added_prices_ == {"later": 0.05}
    vm = _fitted_v0(log)  # the router's add_history grew the first one
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every fitted policy priced: no warning
        assert Router(vm, cost_model="fixed", prices=PRICES3).fit().policies_ == ["big", "mid", "small"]
        assert Router(vm, policies=["big", "mid"], cost_model="fixed", prices=PRICES3).fit().policies_ == ["big", "mid"]
    with pytest.raises(DataError, match=r"none of the 1 priced policies has history.*Fix: pass prices"):
        Router(vm, cost_model="fixed", prices={"typo": 1.0}).fit()


def test_router_add_history_warns_about_the_prices_it_ignores():
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    rows = pl.DataFrame({"policy": ["big", "new"], "prompt": ["q1 level 1", "q2 level 2"], "score": [1.0, 0.0]})
    with pytest.warns(V0liteWarning, match="ignored prices entries") as caught:
        r.add_history(rows, prices={"big": 9.0, "new": 0.2, "ghost": 0.3})
    text = str(caught[0].message)
    assert "['big'] are already in the pool (their cost comes from the cost model)" in text
    assert "['ghost'] have no rows in this log (nothing to join)" in text and "'new'" not in text
    assert r.added_prices_ == {"new": 0.2} and r.predict_matrix(["q9 level 9"])[1][0, 0] != 9.0
    with pytest.warns(
        V0liteWarning, match=r"\['new'\] are already in the pool \(they joined at a price per call: 'new' at 0.2"
    ):
        r.add_history(rows.filter(pl.col("policy") == "new"), prices={"new": 0.5})
    assert r.added_prices_ == {"new": 0.2}
    with pytest.warns(V0liteWarning, match=r"\['other'\] do not join with join=False"):
        r.add_history(rows.with_columns(pl.lit("other").alias("policy")), prices={"other": 0.1}, join=False)
    assert "other" not in r.policies_
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # prices only for the policies that join: nothing to say
        r.add_history(rows.with_columns(pl.lit("fresh").alias("policy")), prices={"fresh": 0.1})
    assert r.added_prices_["fresh"] == 0.1


def test_router_set_prices_updates_the_params_so_save_load_and_refit_keep_them(tmp_path):
    """Probe 6: after set_prices, cost_model still said 'knn' (a refit went back to learned costs) and a
    loaded router had cost_model='fixed' without its prices (a refit failed)."""
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    new = {"big": 2.0, "mid": 0.5, "small": 0.05}
    r.set_prices(new)
    assert r.get_params()["cost_model"] == "fixed" and r.get_params()["prices"] == new
    prompts = ["new level 2", "new level 7"]
    want = np.tile([new[p] for p in r.policies_], (2, 1))
    np.testing.assert_allclose(r.fit(log).predict_matrix(prompts)[1], want)  # a refit keeps the prices
    r.save(tmp_path / "router")
    back = Router.load(tmp_path / "router", embedder=FakeEmbedder())
    assert back.get_params()["cost_model"] == "fixed" and back.get_params()["prices"] == new
    np.testing.assert_allclose(back.fit(log).predict_matrix(prompts)[1], want)
    assert back.route(prompts, lam=0.0).tolist() == r.route(prompts, lam=0.0).tolist()


def test_router_set_prices_joins_a_model_the_value_model_holds():
    """Probe V D2: after add_history(join=False) the model could join only by resending its rows (counted twice).
    set_prices with its price joins it, without touching the value model; a name it does not hold stays out."""
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    rows = pl.DataFrame(
        {"policy": ["star"] * 20, "prompt": [f"q{i} level {i % 10}" for i in range(20)], "score": [1.0] * 20}
    )
    r.add_history(rows, join=False)
    assert "star" not in r.policies_
    n_rows = r.value_model.index_.n_rows
    with pytest.warns(V0liteWarning, match=r"which price nothing: \['ghost'\]"):
        r.set_prices({**PRICES3, "star": 0.05, "ghost": 0.01})
    assert r.policies_ == ["big", "mid", "small", "star"] and r.added_prices_ == {"star": 0.05}
    assert r.value_model.index_.n_rows == n_rows  # no row added again
    prompts = [f"new level {d}" for d in range(10)]
    np.testing.assert_allclose(r.predict_matrix(prompts)[1][:, -1], 0.05)
    assert set(r.route(prompts, lam=1.0).tolist()) == {"star"}  # cheapest and best: routed to
    r.set_prices({**PRICES3, "star": 0.5})  # a joined model is repriced, not joined twice
    assert r.policies_ == ["big", "mid", "small", "star"] and r.added_prices_ == {"star": 0.5}


@pytest.mark.parametrize("join", ["no", None, 1, np.array([True])])
def test_router_add_history_join_must_be_a_bool(join):
    from v0lite.exceptions import ParameterError

    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    rows = pl.DataFrame({"policy": ["star"], "prompt": ["q1 level 1"], "score": [1.0]})
    n_rows = r.value_model.index_.n_rows
    with pytest.raises(ParameterError, match=r"join must be True or False, got .*Fix: pass join=True or join=False"):
        r.add_history(rows, prices={"star": 0.1}, join=join)
    assert r.value_model.index_.n_rows == n_rows and "star" not in r.policies_
    r.add_history(rows, prices={"star": 0.1}, join=np.bool_(True))  # numpy's bool is a bool
    assert r.policies_[-1] == "star"


def test_router_add_history_warns_once_about_a_known_name_written_another_way():
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    rows = pl.DataFrame({"policy": ["BIG "], "prompt": ["q1 level 1"], "score": [1.0]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r.add_history(rows, prices={"BIG ": 0.1})
    said = [str(w.message) for w in caught if "only by case, spaces or Unicode width" in str(w.message)]
    assert len(said) == 1 and said[0].startswith("'BIG ' differs from the known 'big'"), said
    assert r.policies_[-1] == "BIG "  # joined as written: the name may be meant


def test_prices_naming_no_model_are_warned_once_with_the_name_meant_wherever_the_router_takes_them():
    """Probe FR 2: a misspelt, a case-variant or an unknown name in prices priced nothing, silently, in
    Router(cost_model="fixed", prices=...).fit(), Router(prices=...).fit(log) and set_prices. One check now."""
    from v0lite._log_warnings import meant_name

    log = _log()
    vm = _fitted_v0(log)  # knows big, mid, small
    odd = {"Big": 0.9, "smal": 0.2, "brand-new-llm": 0.3}
    want = r"the prices name 3 policies in neither the pool nor the value model's history, which price nothing: "
    want += r"\['Big', 'smal', 'brand-new-llm'\] \('Big': did you mean 'big'\?; 'smal': did you mean 'small'\?\)"
    with pytest.warns(V0liteWarning, match=want):
        r = Router(vm, cost_model="fixed", prices={**PRICES3, **odd}).fit()
    assert r.policies_ == ["big", "mid", "small"] and r.get_params()["prices"] == {**PRICES3, **odd}  # kept
    with pytest.warns(V0liteWarning, match=want):
        Router(vm, embedder=FakeEmbedder(), k=4, prices={**PRICES3, **odd}).fit(log)
    with pytest.warns(V0liteWarning, match=want):
        r.set_prices({**PRICES3, **odd})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every name a pool model: nothing to say
        r.set_prices(PRICES3)
        Router(vm, policies=["big", "mid"], cost_model="fixed", prices=PRICES3).fit()  # small: in the history
    assert meant_name("gpt-4-1106-previwe", {"gpt-4-1106-preview", "gpt-4-0613"}) == "gpt-4-1106-preview"
    assert meant_name("GPT-4-1106-preview", {"gpt-4-1106-preview"}) == "gpt-4-1106-preview"
    assert meant_name("gpt-4-0314", {"gpt-4-0613"}) is None  # another version, not a typo
    assert meant_name("brand-new-llm", {"gpt-4-0613"}) is None
