"""The demo data: ``make_demo_log`` is deterministic, shaped and has signal, ``write_demo_data`` writes it,
and the committed demo files are current and small."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import v0lite.data as D
from v0lite.exceptions import DataError
from v0lite.log import read_log

# --------------------------------------------------------------------------- demo


def test_make_demo_log_deterministic_and_shaped():
    a = D.make_demo_log(n_policies=3, n_topics=4, n_prompts_per_topic=10, n_steps=2, random_state=5)
    b = D.make_demo_log(n_policies=3, n_topics=4, n_prompts_per_topic=10, n_steps=2, random_state=5)
    c = D.make_demo_log(n_policies=3, n_topics=4, n_prompts_per_topic=10, n_steps=2, random_state=6)
    assert a.equals(b) and not a.equals(c)
    assert a.columns == ["policy", "prompt", "score", "step", "n", "cost", "task"]
    assert a.height == 3 * 4 * 10 * 2
    assert a["prompt"].n_unique() == 40
    assert a["policy"].n_unique() == 3 and all(p.startswith("synthetic-") for p in a["policy"].unique())
    assert a["task"].n_unique() == 4
    assert set(a["n"]) == {8}
    assert all(round(s * 8) == s * 8 for s in a["score"])
    # one price per policy, rising with size
    prices = a.group_by("policy").agg(pl.col("cost").n_unique().alias("k"), pl.col("cost").first())
    assert set(prices["k"]) == {1}


def test_demo_log_has_signal():
    log = D.make_demo_log(random_state=0)
    by_pol = log.group_by("policy").agg(pl.col("score").mean()).sort("score")
    assert by_pol["policy"].to_list() == ["synthetic-tiny", "synthetic-small", "synthetic-medium", "synthetic-large"]
    by_step = log.group_by("step").agg(pl.col("score").mean()).sort("step")
    assert by_step["score"].is_sorted()
    with pytest.raises(DataError, match="n_topics"):
        D.make_demo_log(n_topics=99)


def test_write_demo_data(tmp_path):
    kw = dict(n_policies=2, n_topics=3, n_prompts_per_topic=6, n_query_prompts_per_topic=2, n_steps=2)
    p1 = D.write_demo_data(tmp_path / "a", **kw)
    p2 = D.write_demo_data(tmp_path / "b", **kw)
    for k in ("log", "queries", "readme"):
        assert p1[k].read_bytes() == p2[k].read_bytes()
    hist, q = read_log(p1["log"]), read_log(p1["queries"])
    assert not set(hist["prompt"]) & set(q["prompt"])
    assert q["prompt"].n_unique() == 3 * 2 and hist["prompt"].n_unique() == 3 * 4
    assert set(q["policy"]) == set(hist["policy"]) and set(q["step"]) == {0, 1}
    assert "SYNTHETIC" in p1["readme"].read_text()
    with pytest.raises(DataError, match="n_query_prompts_per_topic"):
        D.write_demo_data(tmp_path / "c", n_prompts_per_topic=4, n_query_prompts_per_topic=4)


def test_committed_demo_files_are_current_and_small():
    root = Path(D.__file__).resolve().parents[2] / "data"
    files = [root / "demo_log.jsonl", root / "demo_queries.jsonl", root / "README.md"]
    if not all(f.exists() for f in files):
        pytest.skip("data/demo_*.jsonl not generated")
    assert sum(f.stat().st_size for f in files) < 500_000
    hist, q = read_log(files[0]), read_log(files[1])
    assert not set(hist["prompt"]) & set(q["prompt"])


def test_demo_without_the_data_folder_builds_the_same_frames(monkeypatch, tmp_path):
    """An installed package has no data/: ``v0lite demo`` then builds in memory exactly what the files hold."""
    import v0lite.commands.core as core

    root = Path(D.__file__).resolve().parents[2] / "data"
    hist, q = read_log(root / "demo_log.jsonl"), read_log(root / "demo_queries.jsonl")
    assert all(a.equals(b) for a, b in zip(core._demo_data(), (hist, q)))  # in the repo: the files
    monkeypatch.setattr(core, "__file__", str(tmp_path / "site-packages" / "v0lite" / "commands" / "core.py"))
    history, queries, src = core._demo_data()
    assert "SYNTHETIC" in src and str(root) not in src  # the fallback ran
    assert history.equals(hist) and queries.equals(q)
    assert (history.height, queries.height) == (1728, 576)
