"""The optional Ray paths: embed_with_ray writes ordinary cache shards; predict_with_ray scores in actors.

The Ray tests start one local Ray (2 CPUs, fractional actors), shared by the module and shut down
after it; they run in the default suite (ray[data] is in the dev extras, so they never skip).
"""

from __future__ import annotations

import builtins
import re
import sys
import zlib

import numpy as np
import polars as pl
import pytest

from v0lite.exceptions import V0liteError


class TinyEncoder:
    """Deterministic 32-d hashed-trigram encoder, defined here so Ray can ship it by value."""

    model_id = "tiny-test-32"

    def encode(self, texts):
        out = np.zeros((len(texts), 32), np.float32)
        for i, t in enumerate(texts):
            s = f"  {t.lower()}  "
            for j in range(len(s) - 2):
                h = zlib.crc32(s[j : j + 3].encode())
                out[i, h % 32] += 1.0 if (h >> 20) & 1 else -1.0
            out[i, 0] += 0.5
        return out


def test_missing_ray_gives_install_hint(monkeypatch):
    from v0lite import distributed

    real_import = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(V0liteError, match=r"pip install 'v0lite\[ray\]'"):
        distributed.embed_with_ray(["a"], cache_dir="/tmp/never-used")
    with pytest.raises(V0liteError, match=r"pip install 'v0lite\[ray\]'"):
        distributed.predict_with_ray("/nonexistent", pl.DataFrame({"policy": ["a"], "prompt": ["x"]}))


def test_import_does_not_import_ray():
    import importlib

    import v0lite.distributed as d

    importlib.reload(d)
    assert "ray" not in d.__dict__


@pytest.fixture(scope="module")
def local_ray(request):
    import ray
    import ray.cloudpickle as rcp
    import ray.data

    rcp.register_pickle_by_value(sys.modules[__name__])  # the test module is not importable in workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    request.addfinalizer(ray.shutdown)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    return ray


def _prompts(n):
    return [f"question {i}: what is {i} plus {i % 7}?" for i in range(n)]


def test_embed_with_ray_writes_cache_the_embedder_reads(local_ray, tmp_path):
    from v0lite.distributed import embed_with_ray
    from v0lite.embed import Embedder

    prompts = _prompts(300)
    log = pl.DataFrame({"policy": ["a", "b"] * 300, "prompt": prompts + prompts})  # duplicates
    res = embed_with_ray(
        log, model=TinyEncoder(), num_actors=2, num_cpus_per_actor=0.5, cache_dir=tmp_path, chunk_size=64
    )
    assert res["unique"] == 300 and res["embedded"] == 300 and res["cached"] == 0
    shards = list((tmp_path / "embeddings").rglob("shard-*.npz"))
    assert len(shards) >= 5  # 300 prompts / 64 per shard

    class Boom(TinyEncoder):
        def encode(self, texts):  # the single-machine path must not recompute anything
            raise AssertionError(f"re-embedded {len(texts)} prompts")

    cached = Embedder(Boom(), cache_dir=tmp_path).encode(prompts)
    fresh = Embedder(TinyEncoder(), cache_dir=False).encode(prompts)
    np.testing.assert_allclose(cached, fresh, atol=1e-6)
    again = embed_with_ray(prompts[:10] + ["a brand new prompt"], model=TinyEncoder(), cache_dir=tmp_path)
    assert again["cached"] == 10 and again["embedded"] == 1


def test_predict_with_ray_matches_local_predict(local_ray, tmp_path):
    from v0lite import V0Regressor
    from v0lite.distributed import predict_with_ray

    rng = np.random.default_rng(0)
    prompts = _prompts(120)
    hist = pl.DataFrame({"policy": ["a"] * 120 + ["b"] * 120, "prompt": prompts + prompts})
    y = rng.random(240)
    enc = TinyEncoder()
    model = V0Regressor(head="knn", encoder=enc, cache_dir=tmp_path / "cache", k=8).fit(hist, y)
    model.save(tmp_path / "model")
    queries = pl.DataFrame(
        {
            "policy": ["a", "b"] * 150,
            "prompt": [f"new question {i} about {i % 11}" for i in range(300)],
            "extra": list(range(300)),
        }
    )
    out = tmp_path / "pred.parquet"
    res = predict_with_ray(
        tmp_path / "model",
        queries,
        out,
        encoder=enc,
        num_actors=2,
        num_cpus_per_actor=0.5,
        batch_size=64,
        cache_dir=tmp_path / "cache",
    )
    local = model.predict(queries.select("policy", "prompt"))
    assert res["extra"].to_list() == list(range(300))  # original order, columns carried
    assert "prediction" not in res.columns  # the column is p_success, as `v0lite predict` writes it
    np.testing.assert_allclose(res["p_success"].to_numpy(), local, atol=1e-6)
    np.testing.assert_allclose(pl.read_parquet(out)["p_success"].to_numpy(), local, atol=1e-6)


def _bounded(fn, timeout=120.0):
    """fn() in a daemon thread: its result, its exception, or a test failure if it hangs (never a CI hang)."""
    import threading

    box = {}

    def run():
        try:
            box["ok"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["err"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"the Ray call hung (still running after {timeout:.0f} s)")
    if "err" in box:
        raise box["err"]
    return box["ok"]


def test_ray_pool_holding_every_cpu_completes_and_an_oversized_actor_is_refused(local_ray, tmp_path):
    """Kept last: on a regression the hung pool holds the module's Ray until its shutdown.

    The pool may hold every CPU of the cluster (1 actor x 2 CPUs on the 2-CPU Ray here, the same as
    1 x 1 on a 1-CPU Ray): the rows are split on the driver, not by Ray tasks that would need a CPU
    beside the pool and never start. An actor that fits on no node is refused up front, not waited on.
    """
    from v0lite import V0Regressor
    from v0lite.distributed import embed_with_ray, predict_with_ray

    prompts = _prompts(60)
    res = _bounded(
        lambda: embed_with_ray(
            prompts, model=TinyEncoder(), num_actors=1, num_cpus_per_actor=2, cache_dir=tmp_path, chunk_size=16
        )
    )
    assert res["embedded"] == 60

    enc = TinyEncoder()
    hist = pl.DataFrame({"policy": ["a"] * 60, "prompt": prompts})
    y = np.random.default_rng(1).random(60)
    model = V0Regressor(head="knn", encoder=enc, cache_dir=tmp_path, k=4).fit(hist, y)
    model.save(tmp_path / "model")
    queries = pl.DataFrame({"policy": ["a"] * 40, "prompt": [f"fresh prompt {i}" for i in range(40)]})
    kw = {"encoder": enc, "batch_size": 16, "cache_dir": tmp_path}
    res = _bounded(lambda: predict_with_ray(tmp_path / "model", queries, num_actors=1, num_cpus_per_actor=2, **kw))
    np.testing.assert_allclose(res["p_success"].to_numpy(), model.predict(queries), atol=1e-6)

    msg = r"2 CPU\(s\).*1 x 3 = 3 CPUs.*num_actors=2, num_cpus_per_actor=1"
    with pytest.raises(V0liteError, match=msg):
        _bounded(
            lambda: embed_with_ray(
                ["x y", "z w"], model=TinyEncoder(), num_actors=1, num_cpus_per_actor=3, cache_dir=tmp_path / "other"
            ),
            timeout=60,
        )
    with pytest.raises(V0liteError, match=msg):
        _bounded(
            lambda: predict_with_ray(tmp_path / "model", queries, num_actors=1, num_cpus_per_actor=3, **kw), timeout=60
        )


def _tiny_model(tmp_path, policies=("a", "b")):
    """A saved knn model over TinyEncoder (no Ray): its folder."""
    from v0lite import V0Regressor

    prompts = _prompts(30)
    hist = pl.DataFrame({"policy": [p for p in policies for _ in prompts], "prompt": prompts * len(policies)})
    y = np.random.default_rng(2).random(hist.height)
    V0Regressor(head="knn", encoder=TinyEncoder(), cache_dir=False, k=4).fit(hist, y).save(tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def no_ray_work(monkeypatch):
    """Fail the test if a call gets as far as starting Ray: its refusals must come first."""
    from v0lite import distributed

    def never(*a, **kw):
        raise AssertionError("Ray was started before the input was refused")

    monkeypatch.setattr(distributed, "_ensure_init", never)


def test_predict_with_ray_refuses_bad_queries_on_the_driver(tmp_path, no_ray_work):
    from v0lite.distributed import predict_with_ray
    from v0lite.exceptions import DataError, UnknownPolicyError

    model = _tiny_model(tmp_path)
    q = pl.DataFrame({"policy": ["a", "b", "a", "zz"], "prompt": ["x y", "z w", "  ", "u v"]})
    with pytest.raises(DataError, match=r"column 'prompt', row 2: value '  ' is empty or whitespace"):
        predict_with_ray(model, q, encoder=TinyEncoder())
    q = q.with_columns(pl.Series("prompt", ["x y", "z w", "p q", "u v"]))
    with pytest.raises(UnknownPolicyError, match=r"column 'policy', row 3: policy 'zz' has no history.*Fix:"):
        predict_with_ray(model, q, encoder=TinyEncoder())
    with pytest.raises(UnknownPolicyError, match=r"row 1: policy 'A' .*Did you mean 'a'"):
        predict_with_ray(model, q.with_columns(pl.Series("policy", ["a", "A", "b", "b"])), encoder=TinyEncoder())


def test_predict_with_ray_checks_out_before_any_work(tmp_path, no_ray_work):
    from v0lite.distributed import predict_with_ray
    from v0lite.exceptions import DataError

    model = _tiny_model(tmp_path)
    q = pl.DataFrame({"policy": ["a"], "prompt": ["x y"]})
    with pytest.raises(DataError, match=r"out='.*o6.txt': the name lacks a known suffix.*Fix: name the output"):
        predict_with_ray(model, q, tmp_path / "o6.txt", encoder=TinyEncoder())
    assert not (tmp_path / "o6.txt").exists()
    old = tmp_path / "old.parquet"
    old.write_text("mine")
    with pytest.raises(DataError, match=r"exists \(4 bytes\).*Fix: pass force=True"):
        predict_with_ray(model, q, old, encoder=TinyEncoder())
    assert old.read_text() == "mine"
    empty = q.head(0)  # no rows: written without Ray, so force=True is seen to replace the file
    res = predict_with_ray(model, empty, old, encoder=TinyEncoder(), force=True)
    assert res.height == 0 and pl.read_parquet(old).columns == ["policy", "prompt", "p_success"]


def test_predict_with_ray_refuses_every_unwritable_out_before_any_work(tmp_path, no_ray_work):
    """The refusals `v0lite predict --out` makes, made before Ray starts, in the library's terms."""
    import os

    from v0lite.distributed import predict_with_ray
    from v0lite.exceptions import DataError

    model = _tiny_model(tmp_path)
    q = pl.DataFrame({"policy": ["a"], "prompt": ["x y"]})
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "pipe.parquet")
    cases = {
        tmp_path / "afile" / "o.parquet": r".*afile is a file, not a folder\. Fix: choose another out\.",
        f"{tmp_path}/o.parquet/": r"ends in '/'.*Fix: drop the slash: out='.*o\.parquet'",
        tmp_path / "pipe.parquet": r"is a FIFO \(named pipe\), not a regular file\. Fix: pass a regular file",
    }
    for out, what in cases.items():
        with pytest.raises(DataError, match=rf"^out='{re.escape(str(out))}': {what}"):
            predict_with_ray(model, q, out, encoder=TinyEncoder())
    assert not (tmp_path / "o.parquet").exists()


def test_predict_with_ray_refuses_a_damaged_model_with_the_loads_message(tmp_path, no_ray_work):
    from v0lite import V0Regressor
    from v0lite.distributed import predict_with_ray
    from v0lite.exceptions import FormatVersionError

    model = _tiny_model(tmp_path)
    q = pl.DataFrame({"policy": ["a"], "prompt": ["x y"]})
    (model / "meta.json").write_text("{not json")
    with pytest.raises(FormatVersionError) as load:
        V0Regressor.load(model, encoder=TinyEncoder())
    with pytest.raises(FormatVersionError) as ray_path:  # not a bare ValueError from reading meta.json
        predict_with_ray(model, q, encoder=TinyEncoder())
    assert str(ray_path.value) == str(load.value) and "corrupt JSON" in str(load.value)


def test_embed_with_ray_refuses_blank_prompts_with_the_callers_row(tmp_path, no_ray_work):
    from v0lite.distributed import embed_with_ray
    from v0lite.exceptions import DataError

    prompts = ["a b", "a b", "c d", " \u200b "]
    with pytest.raises(DataError, match=r"column 'prompt', row 3: value .* is empty or whitespace"):
        embed_with_ray(prompts, model=TinyEncoder(), cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"column 'prompt', row 1: value '' is empty"):
        embed_with_ray(pl.DataFrame({"prompt": ["x", ""]}), model=TinyEncoder(), cache_dir=tmp_path)
    assert not (tmp_path / "embeddings").exists()


class FlatEncoder(TinyEncoder):
    """Fails inside the actor only: one number per text, not a vector (the driver never encodes)."""

    model_id = "flat-test-32"

    def encode(self, texts):
        return np.zeros(len(texts), np.float32)


@pytest.mark.slow
def test_embed_with_ray_keys_long_prompts_as_the_embedder_does(local_ray, tmp_path):
    from v0lite.distributed import embed_with_ray
    from v0lite.embed import Embedder
    from v0lite.exceptions import V0liteError as Base

    long = [f"{'shared exemplar text. ' * 60} question {i}?" for i in range(6)]  # over 1,000 characters
    assert min(map(len, long)) > 1000
    embed_with_ray(long, model=TinyEncoder(), cache_dir=tmp_path, num_actors=1, chunk_size=8)

    class Boom(TinyEncoder):
        def encode(self, texts):
            raise AssertionError(f"re-embedded {len(texts)} prompts")

    fresh = Embedder(TinyEncoder(), cache_dir=False).encode(long)  # head and tail, averaged
    np.testing.assert_allclose(Embedder(Boom(), cache_dir=tmp_path).encode(long), fresh, atol=1e-6)
    head = Embedder(TinyEncoder(), cache_dir=False, long_text="truncate").encode(long)
    truncate = Embedder(TinyEncoder(), cache_dir=tmp_path, long_text="truncate").encode(long)
    np.testing.assert_allclose(truncate, head, atol=1e-6)  # not the head-and-tail vector read as its own
    assert not np.allclose(head, fresh, atol=1e-3)
    res = embed_with_ray(long, model=TinyEncoder(), cache_dir=tmp_path / "t", long_text="truncate", num_actors=1)
    assert res["embedded"] == 6
    got = Embedder(Boom(), cache_dir=tmp_path / "t", long_text="truncate").encode(long)
    np.testing.assert_allclose(got, head, atol=1e-6)
    # an error raised inside an actor comes back as the library's own, not Ray's wrapper
    with pytest.raises(Base, match=r"encoder returned shape \(2,\) for 2 texts") as info:
        embed_with_ray(["x y", "z w"], model=FlatEncoder(), cache_dir=tmp_path / "flat", num_actors=1)
    assert type(info.value).__module__.startswith("v0lite"), type(info.value).__mro__


def test_embed_with_ray_refuses_an_unreachable_hub_name_before_ray_starts(tmp_path, no_ray_work, monkeypatch):
    """Issue: each actor waited out the hub client's retries (~85 s), then the call died of a raw ActorDiedError."""
    import types

    import httpx
    import huggingface_hub.utils

    from v0lite.distributed import embed_with_ray
    from v0lite.exceptions import EncoderLoadError

    def head(url, timeout=None):
        raise httpx.ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: types.SimpleNamespace(head=head))
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)  # nothing cached
    with pytest.raises(EncoderLoadError, match=r"the hub https://huggingface.co cannot be reached"):
        embed_with_ray(["a prompt"], model="org/not-cached-name", cache_dir=tmp_path)


def test_embed_with_ray_refuses_a_lone_surrogate_with_its_row(tmp_path, no_ray_work):
    """Issue: polars' UnicodeEncodeError, naming no row."""
    from v0lite.distributed import embed_with_ray
    from v0lite.exceptions import DataError

    with pytest.raises(DataError, match=r"prompt at row 1: 'a\\ud800b' holds undecodable text"):
        embed_with_ray(["ok", "a\ud800b"], model=TinyEncoder(), cache_dir=tmp_path)
    assert not (tmp_path / "embeddings").exists()
