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


def _full_after(monkeypatch, n_ok):
    """The disk takes ``n_ok`` shards, then is full."""
    import errno

    import v0lite._embed_cache as cache

    real, done = cache.atomic_write_bytes, []

    def write(path, data, **kw):
        if len(done) >= n_ok:
            raise OSError(errno.ENOSPC, "No space left on device")
        done.append(path)
        real(path, data, **kw)

    monkeypatch.setattr(cache, "atomic_write_bytes", write)


def test_a_full_cache_disk_names_the_cache_the_kept_prompts_and_the_fix(tmp_path, fake_minilm, monkeypatch, capsys):
    """Issue: a full disk was a bare OSError [Errno 28] (the CLI added 'check that the path's folder exists')."""
    from v0lite.cli import main

    _full_after(monkeypatch, 1)
    emb = Embedder(cache_dir=tmp_path / "mine", chunk_size=2)
    with pytest.raises(DataError) as err:
        emb.encode(["p1", "p2", "p3", "p4"])
    msg = str(err.value)
    assert f"the embedding cache cache_dir='{tmp_path / 'mine'}' cannot be written (No space left on device, " in msg
    assert " MB free; shards in " in msg and "2 of the 4 prompts to embed were cached before it and are kept" in msg
    assert msg.endswith(
        "Fix: free space on that disk, or pass a cache_dir on a disk with room, or cache_dir=False "
        "to keep vectors in memory only."
    )
    assert len(list((tmp_path / "mine").rglob("shard-*.npz"))) == 1  # the cached chunk is kept

    (tmp_path / "log.jsonl").write_text('{"policy": "a", "prompt": "q", "score": 1}\n')
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "env"))
    _full_after(monkeypatch, 0)
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "log.jsonl"), "--model-dir", str(tmp_path / "m"), "--head", "knn", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"the embedding cache V0LITE_CACHE={tmp_path / 'env'} cannot be written (No space left on device" in err
    assert "0 of the 1 prompts" in err and err.count("Fix:") == 1 and "point V0LITE_CACHE at a folder on a disk" in err
    assert not (tmp_path / "m").exists()


def test_the_cli_fix_of_a_full_disk_is_free_space_not_a_missing_folder(tmp_path, monkeypatch, capsys):
    import errno

    from v0lite import cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "_check_inputs", lambda args: None)
    assert cli._run(type("Args", (), {"func": staticmethod(full)})(), "fit") == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("[Errno 28] No space left on device. Fix: free space on that disk, or choose a path on another disk.")
    )


def test_a_killed_writers_shard_temp_file_is_swept_by_the_next_shard_write(tmp_path, fake_minilm):
    """Issue: a shard's temporary file left by a killed writer stayed forever: shard names are content hashes,
    never written again, so atomic_path's sweep of one name never met it."""
    emb = Embedder(cache_dir=tmp_path / "cache", chunk_size=2)
    emb.encode(["p1", "p2"])
    d = emb._shard_dir
    dead = d / f".shard-{'f' * 64}.npz.999999999.zzzz1234.tmp"  # a PID no process has
    live = d / f".shard-{'e' * 64}.npz.{os.getpid()}.abcd1234.tmp"  # this process's own: another thread's write
    dead.write_bytes(b"partial")
    live.write_bytes(b"partial")
    with pytest.warns(V0liteWarning, match=r"removed \.shard-f+\.npz\.999999999\.zzzz1234\.tmp in it"):
        emb.encode(["p3", "p4"])
    assert not dead.exists() and live.exists()
