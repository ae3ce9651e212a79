"""The embedding cache's shards on disk (v0lite._embed_cache): a bad file is skipped even when it cannot be
removed, a file that is not ours is left alone, and a folder that cannot take shards stops before any encoding."""

from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np
import pytest

from v0lite.embed import Embedder
from v0lite.exceptions import DataError, V0liteWarning

TEXTS = ["first prompt", "second prompt", "third prompt"]


def _filled(tmp_path, fake_minilm):
    emb = Embedder(cache_dir=tmp_path / "cache")
    want = emb.encode(TEXTS)
    return emb._shard_dir, want


def _fresh(tmp_path):
    return Embedder(cache_dir=tmp_path / "cache")


def test_a_bad_shard_that_cannot_be_removed_is_skipped(tmp_path, fake_minilm, monkeypatch):
    """Issue: in a read-only cache, one junk shard made every call fail (its removal raised), even with every
    prompt cached in the good shards."""
    d, want = _filled(tmp_path, fake_minilm)
    junk = d / f"shard-{hashlib.sha256(b'junk').hexdigest()}.npz"
    junk.write_bytes(b"not junk at all")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(junk), "unlink", refuse)
    seen = fake_minilm.texts_seen
    emb = _fresh(tmp_path)
    with pytest.warns(V0liteWarning, match=r"checksum mismatch\); skipped it \(cannot remove it: Permission denied\)"):
        got = emb.encode(TEXTS)
    np.testing.assert_allclose(got, want)
    assert fake_minilm.texts_seen == seen and junk.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read once: not warned about again by the same embedder
        emb.encode(["a new prompt"])


def test_a_file_that_is_no_shard_is_named_so_without_numpys_pickle_advice(tmp_path, fake_minilm):
    d, _ = _filled(tmp_path, fake_minilm)
    data = b"this is not an npz file"
    bad = d / f"shard-{hashlib.sha256(data).hexdigest()}.npz"  # its checksum right, its contents no .npz
    bad.write_bytes(data)
    with pytest.warns(V0liteWarning) as rec:
        _fresh(tmp_path).encode(TEXTS)
    text = " ".join(str(w.message) for w in rec)
    assert "is not a v0lite shard (not a NumPy .npz file); removed it" in text
    assert "pickle" not in text and not bad.exists()


def test_a_users_file_named_like_a_shard_is_left_alone(tmp_path, fake_minilm):
    """Issue: any file matching shard-*.npz (shard-0000.npz) was deleted as "corrupt (checksum mismatch)"."""
    d, want = _filled(tmp_path, fake_minilm)
    mine = d / "shard-0000.npz"
    mine.write_bytes(b"the user's own file")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(_fresh(tmp_path).encode(TEXTS), want)
    assert mine.read_bytes() == b"the user's own file"


@pytest.mark.parametrize("how", ["file", "read-only"])
def test_an_encoder_folder_that_cannot_take_shards_stops_before_encoding(tmp_path, fake_minilm, monkeypatch, how):
    """Issue: an unwritable encoder folder below a usable cache root was found only after every prompt was
    encoded, with a raw errno and an internal file name."""
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "root"))
    emb = Embedder()
    d = emb._shard_dir
    if how == "file":
        d.parent.mkdir(parents=True)
        d.write_text("x")
    else:  # root ignores modes: the check is what os.access says
        d.mkdir(parents=True)
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(d) else real(p, mode))
    with pytest.raises(DataError) as err:
        emb.encode(TEXTS)
    problem = f"{d} is a file, not a folder" if how == "file" else f"cannot write in {d} (permission denied)"
    assert str(err.value).startswith(f"V0LITE_CACHE={tmp_path / 'root'}: {problem}. Fix: point V0LITE_CACHE at")
    assert fake_minilm.texts_seen == 0  # nothing encoded, then lost
    with pytest.raises(DataError, match=r"cache_dir=.*Fix: pass a cache_dir you can write, or cache_dir=False"):
        Embedder(cache_dir=tmp_path / "root").encode(TEXTS)
    assert Embedder(cache_dir=False).encode(TEXTS).shape == (3, fake_minilm.dim)
