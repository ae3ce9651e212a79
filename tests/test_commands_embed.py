"""``v0lite embed DATASET``: the training set is embedded ahead of time, then predicting it runs no encoder."""

from __future__ import annotations

import polars as pl

from v0lite.cli import main


def _model_dir(tmp_path, small_log):
    from v0lite.estimator import V0Regressor

    V0Regressor(head="knn").fit(small_log).save(tmp_path / "model")
    return str(tmp_path / "model")


def test_embed_fills_the_cache_the_trainer_reads(tmp_path, small_log, fake_minilm, capsys):
    model_dir = _model_dir(tmp_path, small_log)
    new = [f"an unseen training question {i}?" for i in range(5)]
    chats = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": q}] for q in new]
    pl.DataFrame({"prompt": chats + chats[:1]}).write_parquet(tmp_path / "train.parquet")
    assert main(["embed", str(tmp_path / "train.parquet"), "--model-dir", model_dir, "--messages", "user", "-q"]) == 0
    assert "embedded 5 unique prompts of 6 rows" in capsys.readouterr().out
    seen = fake_minilm.texts_seen
    from v0lite.estimator import V0Regressor

    fresh = V0Regressor.load(model_dir)  # a new process: only the disk cache carries over
    fresh.predict(pl.DataFrame({"policy": [small_log["policy"][0]] * 5, "prompt": new}))
    assert fake_minilm.texts_seen == seen  # every prompt came from the cache


def test_embed_names_the_column_and_the_flag(tmp_path, small_log, fake_minilm, capsys, guarantees):
    model_dir = _model_dir(tmp_path, small_log)
    pl.DataFrame({"question": ["a?", "b?"]}).write_parquet(tmp_path / "q.parquet")
    assert main(["embed", str(tmp_path / "q.parquet"), "--model-dir", model_dir, "-q"]) == 1
    err = capsys.readouterr().err
    assert "no column 'prompt'" in err and "--prompt-key" in err
    pl.DataFrame({"prompt": [1, 2]}).write_parquet(tmp_path / "n.parquet")
    assert main(["embed", str(tmp_path / "n.parquet"), "--model-dir", model_dir, "-q"]) == 1
    err = capsys.readouterr().err
    assert "column 'prompt', row 0" in err and "--prompt-key" in err
    assert main(["embed", str(tmp_path / "missing.parquet"), "--model-dir", model_dir]) == 1
    assert "DATASET" in capsys.readouterr().err
    guarantees.tick("bad-input cases tried", 3)
