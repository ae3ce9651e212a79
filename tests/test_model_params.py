"""The estimator's parameter checks (v0lite._model_params): one rule per parameter, run by fit, predict, save
and load, so an invalid value is a ParameterError naming it before any work and save never writes a folder
that load refuses; run-time settings changed with set_params after fit are used at the next embedding."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import FakeEncoder
from v0lite.estimator import V0Regressor
from v0lite.exceptions import ParameterError

_NEW = pl.DataFrame({"policy": ["pol0", "pol1"], "prompt": ["a prompt never seen", "another new one"]})


def _shards(folder) -> list:
    return sorted(folder.rglob("shard-*.npz")) if folder.exists() else []


# --- batch_size, cache_dir, encoder, show_progress_bar: checked at fit, before the encoder runs ----------------


@pytest.mark.parametrize("bad", [0, -1, "x", 2.5, True, 2**20 + 1, None])
def test_batch_size_is_checked_at_fit_before_any_work(make_model, small_log, fake_encoder, bad, guarantees):
    """Issue: with an encoder object (or every prompt cached) fit never read batch_size, so batch_size=0 fitted
    and saved a folder that load refused; 'x' and 2.5 gave a bare ValueError / TypeError."""
    guarantees.tick("bad-input cases tried")
    with pytest.raises(ParameterError, match=r"batch_size must be an integer in \[1, 2\*\*20\], got .*Fix: pass"):
        make_model(batch_size=bad).fit(small_log)
    assert fake_encoder.calls == 0  # nothing was embedded
    assert make_model(batch_size=np.int64(8)).fit(small_log).n_history_ == small_log.height  # a grid's value


@pytest.mark.parametrize(
    "param, bad, pattern",
    [
        ("cache_dir", 123, r"cache_dir must be a folder path, None .* or False .*got 123\. Fix: "),
        ("cache_dir", True, r"cache_dir must be a folder path.*got True\. Fix: "),
        ("encoder", 123, r"encoder must be a sentence-transformers name or folder, or an object with an encode"),
        ("encoder", object(), r"encoder must be .*got object <object object"),
        ("show_progress_bar", "no", r"show_progress_bar must be True or False, got 'no'\. Fix: "),
        ("show_progress_bar", None, r"show_progress_bar must be True or False, got None"),
        ("device", 5, r"device must be a torch device name such as 'cpu' or 'cuda:0' .*got 5\. Fix: pass e\.g\."),
    ],
)
def test_invalid_run_time_settings_are_parameter_errors_naming_them(
    make_model, small_log, fake_encoder, param, bad, pattern, guarantees
):
    """Issue: cache_dir=123 gave a bare TypeError, encoder=123 an AttributeError ('int' has no 'encode'), and
    show_progress_bar='no' was taken as true."""
    guarantees.tick("bad-input cases tried")
    with pytest.raises(ParameterError, match=pattern):
        make_model(**{param: bad}).fit(small_log)
    assert fake_encoder.calls == 0


def test_load_checks_its_encoder_and_cache_dir_as_fit_does(make_model, small_log, tmp_path, guarantees):
    guarantees.tick("bad-input cases tried", 2)
    make_model().fit(small_log).save(tmp_path / "m")
    with pytest.raises(ParameterError, match=r"encoder must be .*got int 123"):
        V0Regressor.load(tmp_path / "m", encoder=123)
    with pytest.raises(ParameterError, match=r"cache_dir must be a folder path.*got 123"):
        V0Regressor.load(tmp_path / "m", encoder=FakeEncoder(), cache_dir=123)


# --- set_params after fit: checked where read, never saved invalid -------------------------------------------


@pytest.mark.parametrize(
    "param, bad",
    [("batch_size", 0), ("batch_size", 2.5), ("batch_size", "x"), ("fallback", "weird"), ("fallback", "prior")],
)
def test_save_refuses_a_setting_load_would_refuse_and_writes_nothing(make_model, small_log, tmp_path, param, bad):
    """Issue: set_params(batch_size=0) or (fallback='weird') after fit was saved without a word, and the folder
    could not be loaded ("re-save the model" gave the same folder again)."""
    m = make_model().fit(small_log).set_params(**{param: bad})
    with pytest.raises(ParameterError, match=rf"{param}.*Fix: .*{param}=.*with set_params"):
        m.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()  # checked before anything is written
    m.set_params(**{param: np.int64(8) if param == "batch_size" else "global_mean"}).save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder(), cache_dir=False)
    assert back.get_params()[param] == (8 if param == "batch_size" else "global_mean")


def test_fallback_set_after_fit_is_checked_at_predict(make_model, small_log, guarantees):
    """Issue: predict read any fallback other than 'error' as 'global_mean' (an unknown policy got the mean)."""
    guarantees.tick("bad-input cases tried")
    m = make_model(fallback="global_mean").fit(small_log)
    unknown = pl.DataFrame({"policy": ["nobody"], "prompt": [small_log["prompt"][0]]})
    assert np.isfinite(m.predict(unknown)).all()
    m.set_params(fallback="weird")
    for q in (unknown, small_log.head(2), small_log.head(0)):  # refused whatever the rows
        with pytest.raises(ParameterError, match=r"fallback .weird.*fallback=.global_mean. \(on a fitted model, with"):
            m.predict(q)


def test_run_time_settings_set_after_fit_take_effect_at_the_next_embedding(small_log, tmp_path):
    """Issue: the embedder was rebuilt only for another encoder object, so set_params(cache_dir=..., batch_size=...)
    after a fit was ignored even by the next fit (shards still written to the old cache, old batch size)."""
    enc = FakeEncoder()
    a, b = tmp_path / "A", tmp_path / "B"
    m = V0Regressor(head="knn", encoder=enc, cache_dir=a).fit(small_log)
    in_a = _shards(a)
    assert in_a
    m.set_params(cache_dir=b, batch_size=1)
    enc.calls = 0
    m.fit(small_log.with_columns(pl.col("prompt") + " again"))
    n_prompts = small_log["prompt"].n_unique()
    assert enc.calls == n_prompts  # batch_size=1: one encoder call per new prompt
    assert _shards(a) == in_a and _shards(b)  # the new cache, not the old one
    m.set_params(cache_dir=False)
    in_b = _shards(b)
    m.predict(_NEW)
    assert _shards(b) == in_b  # cache_dir=False: nothing more written to disk
    m.set_params(device="cpu")
    assert m._get_embedder().device == "cpu"


def test_batch_size_and_progress_changes_keep_the_embedders_vectors(small_log):
    """batch_size and show_progress_bar are read at each encoder call: changed in place, the vectors embedded so
    far (in memory only here) are not embedded again, and the encoder is not reloaded."""
    enc = FakeEncoder()
    m = V0Regressor(head="knn", encoder=enc, cache_dir=False).fit(small_log)
    m.predict(_NEW)
    emb, calls = m._get_embedder(), enc.calls
    m.set_params(batch_size=1, show_progress_bar=True)
    m.predict(_NEW)
    assert m._get_embedder() is emb and (emb.batch_size, emb.show_progress_bar) == (1, True)
    assert enc.calls == calls  # the new prompts' vectors were kept
    m.set_params(batch_size=0)
    with pytest.raises(ParameterError, match=r"batch_size must be an integer.*got 0"):
        m.predict(_NEW.with_columns(pl.col("prompt") + "!"))
    assert emb.batch_size == 1  # an invalid value never reaches the embedder


# --- load refuses what fit refuses -------------------------------------------------------------------------


def test_saved_head_problem_names_a_mismatch_and_a_missing_head():
    from v0lite._model_params import saved_head_problem

    assert saved_head_problem({"head": "KNN"}, "knn") is None  # the same head, spelled as the user did
    assert saved_head_problem({"head": "nope"}, "knn") is None  # left to loading the head (names valid ones)
    assert saved_head_problem({"head": "gbdt"}, "knn") == "parameter 'head' is 'gbdt', but the saved head is 'knn'"
    assert "lacks 'head'" in saved_head_problem({}, "knn")


def test_a_head_spelled_another_way_saves_and_loads(make_model, small_log, tmp_path):
    m = make_model(head="KNN").fit(small_log)
    m.save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder())
    assert back.head == "KNN"
    np.testing.assert_array_equal(back.predict(small_log), m.predict(small_log))
