"""The estimator's encoder (issue 27): run-time settings are not saved, an encoder is known by its files
or its model id, and another encoder, a NaN or a wrong size is refused naming the row or the fix."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import FakeEncoder
from v0lite.estimator import V0Regressor
from v0lite.exceptions import V0liteError

# --- issue 27: run-time settings are not saved; encoders are known by their files -------------------------


def _edit_meta(folder, edit):
    import json

    from v0lite.persist import _meta_digest

    meta = json.loads((folder / "meta.json").read_text())
    edit(meta)
    meta["meta_sha256"] = _meta_digest(meta)
    (folder / "meta.json").write_text(json.dumps(meta))


def test_cache_dir_is_not_saved_and_an_old_folders_is_ignored(tmp_path, small_log, monkeypatch, guarantees):
    import json

    guarantees.tick("bad-input cases tried")
    m = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=tmp_path / "fit-cache", show_progress_bar=True)
    m.fit(small_log).save(tmp_path / "m")
    params = json.loads((tmp_path / "m" / "meta.json").read_text())["params"]
    assert "cache_dir" not in params and "show_progress_bar" not in params
    # a folder written before this rule (or edited) names a cache: loading ignores it
    elsewhere = tmp_path / "not-yours"
    _edit_meta(tmp_path / "m", lambda meta: meta["params"].update(cache_dir=str(elsewhere)))
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "env-cache"))
    back = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder())
    assert back.cache_dir is None and back.show_progress_bar is False
    back.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["a brand new prompt"]}))
    assert not elsewhere.exists() and list((tmp_path / "env-cache").rglob("shard-*.npz"))
    mine = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder(), cache_dir=tmp_path / "mine")
    mine.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["another new prompt"]}))
    assert list((tmp_path / "mine").rglob("shard-*.npz"))


def _encoder_folder(path, weights=b"weights v1"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_a_relative_encoder_path_is_saved_resolved(tmp_path, small_log, fake_minilm, monkeypatch, guarantees):
    import json

    guarantees.tick("bad-input cases tried")
    _encoder_folder(tmp_path / "work" / "enc")
    monkeypatch.chdir(tmp_path / "work")
    m = V0Regressor(head="knn", encoder="enc").fit(small_log)
    m.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["params"]["encoder"] == str(tmp_path / "work" / "enc")
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a new prompt"]})
    expected = m.predict(q)
    monkeypatch.chdir(tmp_path)  # another working folder: "enc" names nothing here
    np.testing.assert_array_equal(V0Regressor.load(tmp_path / "m").predict(q), expected)


def test_an_encoder_folder_changed_after_fit_is_refused(tmp_path, small_log, fake_minilm, guarantees):
    """Fine-tuned into the same folder: new prompts would get the new encoder's vectors beside the history's
    old ones. Predicting refuses, naming the fix; the CLI names --encoder, which predict has."""
    from v0lite.cli import main
    from v0lite.exceptions import V0liteError

    guarantees.tick("faults injected")
    enc = _encoder_folder(tmp_path / "enc")
    V0Regressor(head="knn", encoder=str(enc)).fit(small_log).save(tmp_path / "m")
    _encoder_folder(enc, b"weights v2, fine-tuned")
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a new prompt"]})
    with pytest.raises(V0liteError, match=r"not the one this model was fitted with.*Fix: refit"):
        V0Regressor.load(tmp_path / "m").predict(q)
    q.write_ndjson(tmp_path / "q.jsonl")
    args = [
        "predict",
        str(tmp_path / "q.jsonl"),
        "--model-dir",
        str(tmp_path / "m"),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    assert main(args) == 1
    # the original encoder, moved elsewhere: the same files, so predict accepts it with --encoder
    _encoder_folder(tmp_path / "backup", b"weights v1")
    assert main([*args, "--encoder", str(tmp_path / "backup"), "-q"]) == 0


def test_predict_encoder_hint_names_a_flag_predict_has(tmp_path, small_log, fake_minilm, capsys, monkeypatch):
    from v0lite.cli import main

    enc = _encoder_folder(tmp_path / "enc")
    V0Regressor(head="knn", encoder=str(enc)).fit(small_log).save(tmp_path / "m")
    _encoder_folder(enc, b"weights v2")
    pl.DataFrame({"policy": ["pol0"], "prompt": ["new"]}).write_ndjson(tmp_path / "q.jsonl")
    main(["predict", str(tmp_path / "q.jsonl"), "--model-dir", str(tmp_path / "m"), "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert "Fix:" in err and "--encoder PATH" in err and "encoder=" not in err


def test_an_encoder_returning_nan_during_fit_names_the_log_row(small_log, guarantees):
    from v0lite.exceptions import V0liteError

    class NaNOn(FakeEncoder):
        model_id = "nan-on-sort"

        def encode(self, texts):
            out = super().encode(texts)
            out[["sort the list case 6" == t for t in texts]] = np.nan
            return out

    guarantees.tick("bad-input cases tried")
    rows = small_log["prompt"].to_list()
    with pytest.raises(
        V0liteError, match=rf"column 'prompt', row {rows.index('sort the list case 6')}: encoder 'nan-on-sort'"
    ):
        V0Regressor(head="knn", encoder=NaNOn(), cache_dir=False).fit(small_log)


def test_an_encoder_of_another_size_at_predict_is_an_error_naming_the_row(tmp_path, small_log, guarantees):
    """Loaded with an encoder object whose vectors are not the history's size: an error, not a crash."""
    from v0lite.exceptions import V0liteError

    class Short(FakeEncoder):
        def encode(self, texts):
            return super().encode(texts)[:, :32]

    guarantees.tick("bad-input cases tried")
    V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(small_log).save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m", encoder=Short(), cache_dir=False)
    q = pl.DataFrame({"policy": ["pol0", "pol1"], "prompt": ["sort the list case 1", "a new prompt"]})
    with pytest.raises(
        V0liteError, match=r"column 'prompt', row 1: encoder 'fake-ngram-64' returned 32-d vectors.*64-d"
    ):
        back.predict(q)


def test_device_reaches_the_embedder_and_is_not_saved(make_model, small_log, tmp_path):
    from v0lite.estimator import V0Regressor

    model = make_model(device="cpu").fit(small_log)
    assert model._get_embedder().device == "cpu"
    model.save(tmp_path / "m")
    meta = (tmp_path / "m" / "meta.json").read_text()
    assert '"device"' not in meta  # the machine's setting, not the model's
    again = V0Regressor.load(tmp_path / "m", encoder=model.encoder, device="cpu")
    assert again.device == "cpu" and again._get_embedder().device == "cpu"
    assert V0Regressor.load(tmp_path / "m", encoder=model.encoder).device is None


def test_a_model_saved_with_an_encoder_object_asks_for_it_back(make_model, small_log, tmp_path, guarantees):
    guarantees.tick("bad-input cases tried")
    m = make_model().fit(small_log)
    m.save(tmp_path / "m")
    back = V0Regressor.load(tmp_path / "m")  # no encoder=: history prompts still predict
    q = small_log.drop("score").head(3)
    np.testing.assert_array_equal(back.predict(q), m.predict(q))
    with pytest.raises(V0liteError, match=r"custom encoder object \('fake-ngram-64'\).*encoder=<the object>"):
        back.predict(pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt it never embedded"]}))
    np.testing.assert_array_equal(V0Regressor.load(tmp_path / "m", encoder=FakeEncoder()).predict(q), m.predict(q))


def test_fitting_a_loaded_model_without_its_encoder_object_says_so_in_fit_terms(make_model, small_log, tmp_path):
    """Issue: refitting a model loaded without its custom encoder object (or its clone) said the prompts were
    "not in its history or the embedding cache": at fit there is no history; the fix (pass the object) holds."""
    from sklearn.base import clone

    make_model().fit(small_log).save(tmp_path / "m")
    new = small_log.with_columns(pl.col("prompt") + " (new)")
    for model in (V0Regressor.load(tmp_path / "m"), clone(V0Regressor.load(tmp_path / "m"))):
        with pytest.raises(V0liteError, match=r"custom encoder object \('fake-ngram-64'\)") as info:
            model.fit(new)
        msg = str(info.value)
        assert "not in the embedding cache" in msg and "history" not in msg and "set_params(encoder=" in msg
    with pytest.raises(V0liteError, match="not in its history or the embedding cache"):  # at predict, both
        V0Regressor.load(tmp_path / "m").predict(new.head(1))


# --- the fitted encoder, zero-row queries, saved parameters, int policy names ----------------------


class _OtherEncoder(FakeEncoder):
    model_id = "other-encoder"

    def encode(self, texts):
        return super().encode([t[::-1] for t in texts])


def test_an_encoder_other_than_the_fitted_one_is_refused(tmp_path, small_log, guarantees):
    """load(path, encoder=<another>) or set_params(encoder=<another>) after fit: new prompts would be embedded
    by another encoder than the history's. Refused, naming both ids; the fitted encoder (or one with its id)
    still works."""
    guarantees.tick("bad-input cases tried", 3)
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt never seen"]})
    m = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(small_log)
    want = m.predict(q)
    m.save(tmp_path / "m")
    other = V0Regressor.load(tmp_path / "m", encoder=_OtherEncoder(), cache_dir=False)
    with pytest.raises(V0liteError, match=r"'other-encoder' is not the one .*'fake-ngram-64'.*Fix: refit"):
        other.predict(q)
    with pytest.raises(V0liteError, match="other-encoder"):
        other.warm(["another new prompt"])
    same = V0Regressor.load(tmp_path / "m", encoder=FakeEncoder(), cache_dir=False)  # an equivalent encoder
    np.testing.assert_allclose(same.predict(q), want)
    with pytest.raises(V0liteError, match="custom encoder object"):  # saved with an object: asks for it back
        V0Regressor.load(tmp_path / "m", cache_dir=False).predict(q)
    m.set_params(encoder=_OtherEncoder())
    with pytest.raises(V0liteError, match="'other-encoder' is not the one"):
        m.predict(q)


def test_another_object_without_model_id_is_refused_after_fit(small_log):
    class NoId:
        def __init__(self, salt):
            self.salt = salt

        def encode(self, texts):
            return FakeEncoder().encode([self.salt + t for t in texts])

    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt never seen"]})
    enc = NoId("a")
    m = V0Regressor(head="knn", encoder=enc, cache_dir=False).fit(small_log)
    want = m.predict(q)
    m.set_params(encoder=NoId("b"))
    with pytest.raises(V0liteError, match="another object, and neither has a model_id"):
        m.predict(q)
    m.set_params(encoder=enc)
    np.testing.assert_array_equal(m.predict(q), want)


def test_a_model_saved_when_a_sentence_transformer_was_known_by_its_class_still_predicts(
    tmp_path, small_log, stand_in_sentence_transformer
):
    """Before encoder objects had derived ids, a SentenceTransformer object's id was its class name: such a
    folder, loaded with the object, predicts new prompts (it was refused as 'another encoder')."""
    import json

    from tests.conftest import FakeEncoder
    from v0lite.persist import _meta_digest

    SentenceTransformer = stand_in_sentence_transformer
    st = SentenceTransformer("org/model-a")
    m = V0Regressor(head="knn", encoder=st, cache_dir=False).fit(small_log)
    assert m.encoder_id_ == "org/model-a"
    m.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    meta["encoder_id"] = "SentenceTransformer"  # as the version before wrote it
    meta["meta_sha256"] = _meta_digest(meta)
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    q = pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt never seen"]})
    old = V0Regressor.load(tmp_path / "m", encoder=st)
    np.testing.assert_array_equal(old.predict(q), m.predict(q))

    class Other:  # another class without model_id is still another encoder
        def encode(self, texts, **_):
            return FakeEncoder().encode(texts)

    with pytest.raises(V0liteError, match="not the one this model was fitted with"):
        V0Regressor.load(tmp_path / "m", encoder=Other()).predict(q)


def test_clone_shares_an_encoder_object_and_copies_the_rest():
    from sklearn.base import clone

    enc, hp = FakeEncoder(), {"k": 5}
    m = V0Regressor(head="knn", encoder=enc, head_params=hp, k=7)
    c = clone(m)
    assert c.encoder is enc  # a loaded model's weights are not copied per clone
    assert c.head_params == hp and c.head_params is not hp and c.get_params()["k"] == 7
    assert not hasattr(c, "index_")  # unfitted, as any clone
    assert clone(V0Regressor(encoder="all-MiniLM-L6-v2")).encoder == "all-MiniLM-L6-v2"


def test_clone_keeps_metadata_requests_and_output_config_as_sklearns_clone_does():
    import sklearn
    from sklearn.base import clone

    with sklearn.config_context(enable_metadata_routing=True):
        m = V0Regressor(encoder=FakeEncoder()).set_predict_request(exclude_own_prompt=True)
        m.set_score_request(sample_weight=True)
        m._sklearn_output_config = {"transform": "polars"}  # what set_output writes (a regressor has none)
        c = clone(m)  # e.g. each GridSearchCV fold's: routing metadata must reach it as it reaches m
        assert c.get_metadata_routing().predict.requests == {"exclude_own_prompt": True}
        assert c.get_metadata_routing().score.requests == {"sample_weight": True}
    assert (
        c._sklearn_output_config == {"transform": "polars"} and c._sklearn_output_config is not m._sklearn_output_config
    )
    assert c._metadata_request is not m._metadata_request  # a copy: setting the clone's leaves m's alone


def test_a_fitted_model_deep_copies_with_its_own_writer_lock(small_log):
    import copy

    m = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(small_log)
    m.add_history(small_log.head(3))  # the writer lock now exists: deepcopy must not try to copy it
    c = copy.deepcopy(m)
    c.add_history(small_log.head(3))
    assert c.n_history_ == m.n_history_ + 3 and m.n_history_ == small_log.height + 3
