"""The Router's scikit-learn contract and its folder: fit leaves params alone, clone keeps the value
model, save/load round-trips, is total, keeps the umask and never deletes what it did not write."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.test_router import PRICES3, FakeEmbedder, FakeValueModel, _fitted_v0, _log
from v0lite.exceptions import DataError, NotFittedError, V0liteError
from v0lite.routing import (
    Router,
)


def test_router_fit_leaves_params_alone_and_predict_is_route():
    emb = FakeEmbedder()
    r = Router(FakeValueModel(), embedder=emb, k=4, shrink="cv", cv=3)
    before = r.get_params(deep=False)
    r.fit(_log())
    after = r.get_params(deep=False)
    assert before.keys() == after.keys() and all(after[k] is before[k] for k in before)
    assert r.embedder_ is emb and r.shrink == "cv" and isinstance(r.shrink_, float)
    unpriced = Router(FakeValueModel(), cost_model="fixed", prices=PRICES3).fit()
    assert unpriced.embedder is None and unpriced.embedder_ is None  # nothing needed one
    prompts = ["new level 1", "new level 8"]
    assert r.predict(prompts, lam=0.5).tolist() == r.route(prompts, lam=0.5).tolist()


def test_router_clone_keeps_the_fitted_value_model():
    from sklearn.base import clone

    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), k=4).fit(log)
    c = clone(r)
    assert c.value_model is vm and not hasattr(c, "cost_model_")
    prompts = ["new level 2", "new level 7"]
    assert c.fit(log).route(prompts, lam=0.3).tolist() == r.route(prompts, lam=0.3).tolist()
    # what sklearn's clone carries besides the parameters (set_*_request, set_output) survives, as a copy
    r._sklearn_output_config = {"transform": "polars"}
    c = clone(r)
    assert (
        c._sklearn_output_config == {"transform": "polars"} and c._sklearn_output_config is not r._sklearn_output_config
    )


def test_router_fit_rejects_an_unfitted_or_wrong_value_model():
    from conftest import FakeEncoder

    from v0lite.estimator import V0Regressor

    with pytest.raises(NotFittedError, match="value_model V0Regressor is not fitted"):
        Router(V0Regressor(encoder=FakeEncoder()), embedder=FakeEmbedder()).fit(_log())
    with pytest.raises(V0liteError, match="must have predict"):
        Router(object(), embedder=FakeEmbedder()).fit(_log())


@pytest.mark.parametrize("kw", [dict(k=4), dict(k=4, shrink=0.5, prior_k=4), dict(cost_model="fixed", prices=PRICES3)])
def test_router_save_load_round_trip(tmp_path, kw):
    log = _log()
    vm = _fitted_v0(log)
    r = Router(vm, embedder=FakeEmbedder(), **kw).fit(log)
    r.save(tmp_path / "router")
    back = Router.load(tmp_path / "router", embedder=FakeEmbedder())
    prompts = [f"new level {d}" for d in range(10)]
    P, C = r.predict_matrix(prompts)
    P2, C2 = back.predict_matrix(prompts)
    np.testing.assert_array_equal(P, P2)
    np.testing.assert_array_equal(C, C2)
    for lam in (0.0, 0.3, 3.0):
        assert back.route(prompts, lam=lam).tolist() == r.route(prompts, lam=lam).tolist()
    assert back.get_params(deep=False).keys() == r.get_params(deep=False).keys()
    assert (back.shrink_, back.prior_k_, back.policies_) == (r.shrink_, r.prior_k_, r.policies_)
    assert not list(tmp_path.glob(".router*"))  # no temporary folder left behind


def test_a_saved_router_is_readable_by_others_as_the_umask_allows(tmp_path):
    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    before = os.umask(0o022)
    try:
        r.save(tmp_path / "router")
    finally:
        os.umask(before)
    folder = tmp_path / "router"
    modes = {f: f.stat().st_mode & 0o777 for f in [folder, *folder.rglob("*")]}
    assert folder / "arrays.safetensors" in modes and folder / "value_model" / "history.safetensors" in modes
    wrong = {str(f): oct(m) for f, m in modes.items() if m != (0o755 if f.is_dir() else 0o644)}
    assert not wrong, wrong


def test_router_save_load_rejects_corruption_and_needs_an_unsaveable_value_model(tmp_path):
    from v0lite.exceptions import FormatVersionError

    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    r.save(tmp_path / "r")
    f = tmp_path / "r" / "arrays.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(FormatVersionError, match="checksum"):
        Router.load(tmp_path / "r", embedder=FakeEmbedder())
    with pytest.raises(FormatVersionError, match="no meta.json"):
        Router.load(tmp_path, embedder=FakeEmbedder())
    with pytest.raises(NotFittedError):
        Router(FakeValueModel()).save(tmp_path / "unfitted")
    r = Router(FakeValueModel(), embedder=FakeEmbedder(), k=4).fit(log)
    r.save(tmp_path / "fake")
    with pytest.raises(V0liteError, match="value_model=model"):
        Router.load(tmp_path / "fake")
    back = Router.load(tmp_path / "fake", value_model=FakeValueModel(), embedder=FakeEmbedder())
    assert back.route(["new level 3"]).tolist() == r.route(["new level 3"]).tolist()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("strategy", "nope"),
        ("cost_model", {"name": "nope", "meta": {}}),
        ("prior_columns", [99]),
        ("shrink", "half"),
        ("params", {"evil": 1}),
        ("policies", 7),
    ],
)
def test_router_load_is_total(tmp_path, guarantees, key, value):
    """Edited router meta.json values (checksums recomputed, as a deliberate edit would): a FormatVersionError
    with the fix, never a TypeError/KeyError traceback."""
    import json

    from v0lite.exceptions import FormatVersionError
    from v0lite.persist import _meta_digest

    log = _log()
    Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4, shrink=0.5, prior_k=4).fit(log).save(tmp_path / "r")
    mfile = tmp_path / "r" / "meta.json"
    meta = json.loads(mfile.read_text())
    if key == "strategy":
        meta["params"]["strategy"] = value
    else:
        meta[key] = value
    meta["meta_sha256"] = _meta_digest(meta)
    mfile.write_text(json.dumps(meta))
    with pytest.raises(FormatVersionError, match=r"meta.json: .*Fix: re-save the router"):
        Router.load(tmp_path / "r", embedder=FakeEmbedder())
    guarantees.tick("corruptions detected")


def test_router_save_never_deletes_what_it_did_not_write(tmp_path):
    from v0lite.exceptions import DataError

    log = _log()
    r = Router(_fitted_v0(log), embedder=FakeEmbedder(), k=4).fit(log)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("mine")
    with pytest.raises(DataError, match=r"precious: holds files v0lite did not write \(thesis.txt\)"):
        r.save(tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "mine"
    r.save(tmp_path / "router")
    r.save(tmp_path / "router")  # its own folder: replaced
    with pytest.raises(DataError, match="holds a v0lite-router folder, not a v0lite-model one; .* would delete it\\. "):
        r.value_model.save(tmp_path / "router")
    with pytest.raises(DataError, match=r"\(thesis.txt\); a save replaces the whole folder and would delete them\."):
        r.value_model.save(tmp_path / "precious")


def test_router_policies_given_as_one_str_is_an_error():
    """Probe 5: policies="large" became the pool ['l', 'a', 'r', 'g', 'e']."""
    with pytest.raises(DataError, match=r"got one str \('large'\)\. Fix: Router\(\.\.\., policies=\['large'\]\)"):
        Router(FakeValueModel(), policies="large", cost_model="unit").fit()


def test_router_strategy_set_after_fit_says_to_fit_again():
    """Probe 7d: set_params(strategy='budget') without a refit blamed strategy 'utility'."""
    r = Router(FakeValueModel(), cost_model="fixed", prices=PRICES3).fit()
    r.set_params(strategy="budget")
    with pytest.raises(
        V0liteError, match=r"strategy='budget' was set after fit.*'utility'\. Fix: call set_strategy\('budget'\)"
    ):
        r.route(["new level 3"], budget=0.5)
    assert r.fit().route(["new level 3"], budget=0.5).tolist()[0] in PRICES3  # refitted: budget routes
    r.set_params(k=8)  # a parameter other than the strategy: routing goes on
    r.route(["new level 3"], budget=0.5)
