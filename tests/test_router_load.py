"""Router.load is total: a router folder edited on purpose (checksums recomputed) loads as a router that
routes, or fails at load with a FormatVersionError naming the value and the fix, never later at route time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_persist import _reseal as reseal
from tests.test_router import FakeEmbedder, _fitted_v0, _log
from v0lite.exceptions import FormatVersionError, ParameterError, V0liteError, V0liteWarning
from v0lite.routing import Router

PROMPTS = [f"q{i} level {i % 10}" for i in range(10)]  # in the value model's history: no encoder needed


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A router with every saved part: knn cost rows, a shrinkage prior with prior_k, a V0Regressor inside."""
    log = _log()
    path = tmp_path_factory.mktemp("r") / "router"
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4, shrink=0.5, prior_k=4).fit(log)
    assert r.cost_model_.knn_ and r._prior  # the arrays the edits below change
    r.save(path)
    return path


def _reseal(path: Path, meta_edit=None, arrays_edit=None) -> None:
    """Edit a router folder and recompute its checksums, as someone who edits it on purpose would."""
    reseal(path, meta_edit, arrays_edit, arrays_file="arrays.safetensors")


def _meta(key, value):
    def edit(m):
        d, *keys = key.split(".")
        if keys:
            m[d][keys[0]] = value
        else:
            m[d] = value

    return edit


def _arr(key, fn):
    return lambda a: a.__setitem__(key, np.ascontiguousarray(fn(a[key])))


def _floor(m):
    m["cost_model"]["meta"]["floor"]["0"] = -5.0


EDITS = [
    ("shrink-5", _meta("shrink", 5.0), None, r"'shrink' is 5.0, not a weight in \[0, 1\]"),
    ("shrink-neg", _meta("shrink", -1.0), None, r"'shrink' is -1.0"),
    ("prior_k-0", _meta("prior_k", 0), None, r"'prior_k' is 0"),
    ("prior_k-neg", _meta("prior_k", -3), None, r"'prior_k' is -3"),
    ("param-k-0", _meta("params.k", 0), None, r"parameter 'k' is '0'"),
    ("param-k-huge", _meta("params.k", 10**12), None, r"parameter 'k' is '1000000000000'"),
    ("param-shrink", _meta("params.shrink", 7), None, r"parameter 'shrink' is '7'"),
    ("floor-neg", _floor, None, r"'floor' is not fitted columns -> a cost >= 0"),
    ("prior-y-x50", None, _arr("prior.0.y", lambda v: v * 50 + 1), r"'prior.0.y' holds values outside \[0, 1\]"),
    ("prior-y-nan", None, _arr("prior.0.y", lambda v: v * np.nan), r"'prior.0.y' holds non-finite values"),
    ("prior-rows", None, _arr("prior.0.rows", lambda v: v + 10**6), r"'prior.0.rows' holds values outside"),
    ("cost-rows-neg", None, _arr("cost.knn.0.rows", lambda v: -v - 1), r"'cost.knn.0.rows' holds values outside"),
    ("cost-rows-far", None, _arr("cost.knn.0.rows", lambda v: v + 10**6), r"'cost.knn.0.rows' holds values outside"),
    ("cost-mean-2", None, _arr("cost.mean", lambda v: v[:2]), r"'cost.mean' has shape \(2,\)"),
    ("cost-mean-neg", None, _arr("cost.mean", lambda v: -v), r"'cost.mean' holds values outside"),
    ("emb-widths", None, _arr("cost.train_emb", lambda v: v[:, :1]), r"embeddings have two widths"),
    ("policies-drop", lambda m: m["policies"].pop(), None, r"'prior_columns' is '\[0, 1, 2\]'"),
    ("policies-renamed", lambda m: m["policies"].__setitem__(0, "ghost"), None, r"\['ghost'\] have no history"),
    ("added-unknown", _meta("added_prices", [["ghost", 1.0]]), None, r"'added_prices' names \['ghost'\]"),
    ("added-neg", _meta("added_prices", [["small", -1.0]]), None, r"'added_prices' is not a list"),
    ("cost-name", _meta("cost_model.name", "mean"), None, r"'cost_model' is not an object naming"),
    ("prices", _meta("params.prices", {"big": -3}), None, r"parameter 'prices'.*not a finite cost"),
]


@pytest.mark.parametrize("case", EDITS, ids=[c[0] for c in EDITS])
def test_any_edited_router_value_fails_at_load(saved, tmp_path, guarantees, case):
    """Each edit used to load and then route with p_success outside [0, 1], or fail at route time with a raw
    IndexError/ValueError (and `serve` at startup with a traceback)."""
    import shutil

    _name, meta_edit, arrays_edit, pattern = case
    path = tmp_path / "r"
    shutil.copytree(saved, path)
    _reseal(path, meta_edit, arrays_edit)
    with pytest.raises(FormatVersionError, match=r"meta.json: .*" + pattern + r".*Fix: re-save the router"):
        Router.load(path, embedder=FakeEmbedder())
    guarantees.tick("corruptions detected")


def test_an_untouched_router_loads_and_routes_as_saved(saved):
    back = Router.load(saved, embedder=FakeEmbedder())
    P, C = back.predict_matrix(PROMPTS)
    assert P.shape == C.shape == (10, 3) and 0 <= P.min() and P.max() <= 1 and C.min() >= 0


def test_an_embedder_of_another_width_is_named_at_route_time(saved):
    """The stored prompt vectors are 2 wide; an embedder giving 3-wide ones was a raw matmul ValueError."""

    class Wide(FakeEmbedder):
        def encode(self, texts):
            v = super().encode(texts)
            return np.hstack([v, np.zeros((len(v), 1), np.float32)])

    back = Router.load(saved, embedder=Wide())
    with pytest.raises(V0liteError, match=r"embedder gives 3-wide vectors, but the router was fitted with 2-wide.*Fix"):
        back.route(PROMPTS)


def test_router_fit_refuses_a_knn_k_below_one():
    with pytest.raises(ParameterError, match=r"k \(the knn cost model's neighbours\) must be an int >= 1, got 0"):
        Router(_fitted_v0(_log()), embedder=FakeEmbedder(), k=0).fit(_log())


ROUTER_FIX = r"Fix: re-save the router: save it again \(`v0lite route-eval TRAIN TEST --save-router DIR`\)"


def _flip(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))


DAMAGE = {
    "checksum": (lambda p: _flip(p / "arrays.safetensors"), r"arrays.safetensors: missing or corrupt"),
    "missing": (lambda p: (p / "arrays.safetensors").unlink(), r"arrays.safetensors: missing or corrupt"),
    "corrupt-meta": (lambda p: (p / "meta.json").write_text("{oops"), r"meta.json: corrupt JSON"),
    "null-version": (lambda p: _reseal(p, _meta("format_version", None)), r"'format_version' is null, not an int"),
    "vm-newer": (  # the value model inside: the router's fix (refitting the model alone leaves the router as it is)
        lambda p: (reseal(p / "value_model", _meta("format_version", 2)), _reseal(p)),
        r"value_model/meta.json: format version 2 is not supported by this v0lite.*Fix: upgrade v0lite, or ",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_router_folder_says_how_to_save_it_again(saved, tmp_path, damage, guarantees):
    """The fix was "re-save the router", naming no command; a value model of a newer format said to refit the
    model, which leaves the router's folder as it is."""
    import shutil

    path = tmp_path / "r"
    shutil.copytree(saved, path)
    harm, what = DAMAGE[damage]
    harm(path)
    with pytest.raises(FormatVersionError, match=what + r".*?" + ROUTER_FIX.removeprefix("Fix: ")) as got:
        Router.load(path, embedder=FakeEmbedder())
    assert str(got.value).count("Fix:") == 1 and "re-save the model" not in str(got.value)
    guarantees.tick("corruptions detected")


def test_a_negative_saved_price_has_one_fix_the_routers(saved, tmp_path):
    """The prices check's own fix (for a caller passing prices) was kept, then the router's added: two "Fix:"."""
    import shutil

    path = tmp_path / "r"
    shutil.copytree(saved, path)
    _reseal(path, _meta("params.prices", {"big": -3}))
    with pytest.raises(
        FormatVersionError, match=r"prices\['big'\] = -3 is not a finite cost >= 0\. " + ROUTER_FIX
    ) as got:
        Router.load(path, embedder=FakeEmbedder())
    assert str(got.value).count("Fix:") == 1


_KNOBS = {
    "utility": {"lam": 1.0},
    "threshold": {"tau": 0.6},
    "budget": {"budget": 0.5},
    "quality-target": {"target": 0.7},
}


@pytest.mark.parametrize("strategy", sorted(_KNOBS))
def test_a_loaded_router_changes_strategy_without_its_log(saved, tmp_path, strategy):
    """Probe FR 4: set_params(strategy=...) on a loaded router needed fit(log), which a loaded router has not;
    the CLI assigned the private strategy_. set_strategy routes as a refit with that strategy would, and it
    is kept by save and load."""
    import warnings

    log = _log()
    r = Router.load(saved, embedder=FakeEmbedder())
    assert r.set_strategy(strategy) is r and r.strategy_.name == strategy and r.get_params()["strategy"] == strategy
    refit = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4, shrink=0.5, prior_k=4, strategy=strategy).fit(log)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a strategy's own fallback warnings: the same on both sides
        assert r.route(PROMPTS, **_KNOBS[strategy]).tolist() == refit.route(PROMPTS, **_KNOBS[strategy]).tolist()
        r.save(tmp_path / "again")
        back = Router.load(tmp_path / "again", embedder=FakeEmbedder())
        assert back.strategy_.name == strategy
        assert back.route(PROMPTS, **_KNOBS[strategy]).tolist() == refit.route(PROMPTS, **_KNOBS[strategy]).tolist()
    r.set_params(strategy="threshold")  # pending a refit: route says so; set_strategy settles it
    with pytest.warns(V0liteWarning, match="no model reaches tau 0.5"):  # routed with it, not refused
        r.set_strategy("threshold").route(PROMPTS, tau=0.5)
    with pytest.raises(ParameterError, match="budget"):
        r.set_strategy("cheapest")  # an unknown name lists the valid ones and changes nothing
    assert r.strategy_.name == "threshold"
