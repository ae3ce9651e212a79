"""``v0lite embed DATASET``: the training set is embedded ahead of time, then predicting it runs no encoder."""

from __future__ import annotations

import sys
import types

import polars as pl
import pytest

from v0lite.cli import main
from v0lite.embed import _load_sentence_transformer as _real_load  # before fake_minilm replaces it


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
    assert "5 unique prompts of 6 rows: 5 embedded now, 0 already in the history" in capsys.readouterr().out
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


def test_embed_reads_its_dataset_as_every_command_reads_input(tmp_path, small_log, fake_minilm, capsys, guarantees):
    """Issue: embed read files its own way: an empty file, a truncated line, a bare NaN and UTF-16 gave raw
    polars tracebacks, and an empty prompt (which fit refuses) was embedded."""
    model_dir = _model_dir(tmp_path, small_log)
    cases = {
        "empty.jsonl": (b"", "the file is empty"),
        "trunc.jsonl": (b'{"prompt": "a"}\n{"prompt": "b\n', "line 2 (row 1): not valid JSON"),
        "nan.jsonl": (b'{"prompt": "a", "score": NaN}\n', "line 1 (row 0): field 'score' holds NaN"),
        "u16.jsonl": ('{"prompt": "a"}\n'.encode("utf-16"), "UTF-16-encoded"),
        "blank.jsonl": (b'{"prompt": "a"}\n{"prompt": " "}\n', "column 'prompt', row 1: value ' ' is empty"),
    }
    for name, (data, needle) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert main(["embed", str(tmp_path / name), "--model-dir", model_dir, "-q"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"v0lite embed: error: DATASET {tmp_path / name}") and needle in err, err
        assert "Fix:" in err and err.count("\n") == 1, err
    chats = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": ""}]]
    pl.DataFrame({"prompt": chats}).write_parquet(tmp_path / "chat.parquet")
    assert main(["embed", str(tmp_path / "chat.parquet"), "--model-dir", model_dir, "--messages", "user", "-q"]) == 1
    assert "row 0" in (err := capsys.readouterr().err) and "(its --messages user text)" in err, err
    guarantees.tick("bad-input cases tried", len(cases) + 1)


@pytest.mark.parametrize(
    "device, raised",
    [("cuda", AssertionError("Torch not compiled with CUDA enabled")), ("tpu", RuntimeError("Expected one of cpu"))],
)
def test_a_device_torch_refuses_is_named_with_the_flag(
    tmp_path, small_log, fake_minilm, capsys, monkeypatch, device, raised
):
    """Issue: --device cuda on a CPU build of torch gave a raw AssertionError, --device tpu a raw RuntimeError."""
    import v0lite.embed as embed

    model_dir = _model_dir(tmp_path, small_log)

    def refuse(path, device=None):
        raise raised

    monkeypatch.setattr(embed, "_load_sentence_transformer", _real_load)
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=refuse))
    # the encoder's own refusal (what a Python caller meets), past the command's up-front check
    monkeypatch.setattr("v0lite.commands.embed._check_device", lambda device: None)
    pl.DataFrame({"prompt": ["a question the cache has never seen?"]}).write_parquet(tmp_path / "t.parquet")
    assert main(["embed", str(tmp_path / "t.parquet"), "--model-dir", model_dir, "--device", device, "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot run on device {device!r}: {raised}" in err and "Fix: pass --device cpu" in err, err
    assert "leave --device out" in err and "device=" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("device", ["bogus", "cuda:99"])
def test_device_is_checked_even_when_every_prompt_is_cached(tmp_path, small_log, fake_minilm, capsys, device):
    """Issue: --device bogus exited 0 when the cache held every prompt (the encoder never loaded), and the
    summary said "embedded" of prompts that came from the cache."""
    model_dir = _model_dir(tmp_path, small_log)
    pl.DataFrame({"prompt": ["a cached question?", "another one?"]}).write_parquet(tmp_path / "t.parquet")
    for fresh, cached in ((2, 0), (0, 2)):
        assert main(["embed", str(tmp_path / "t.parquet"), "--model-dir", model_dir, "-q"]) == 0
        assert f"{fresh} embedded now, {cached} already in the history or the cache" in capsys.readouterr().out
    assert main(["embed", str(tmp_path / "t.parquet"), "--model-dir", model_dir, "--device", device, "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot run on device {device!r}" in err and "--device cpu" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("device", ["meta", "mps", "bogus", "cuda:99"])
def test_any_device_is_checked_up_front_cached_or_not(tmp_path, small_log, fake_minilm, capsys, device, cached):
    """Issue: only CUDA was checked up front: --device meta gave a RuntimeError traceback (Tensor.item() on meta
    tensors) for an uncached prompt, --device mps on Linux exited 0 when every prompt was cached; and every
    refusal said "This machine has no CUDA device", true only of a CUDA device."""
    import torch

    if device == "mps" and torch.backends.mps.is_available():  # pragma: no cover - an Apple machine
        pytest.skip("mps works here")
    model_dir = _model_dir(tmp_path, small_log)
    pl.DataFrame({"prompt": ["a question?", "another one?"]}).write_parquet(tmp_path / "t.parquet")
    if cached:
        assert main(["embed", str(tmp_path / "t.parquet"), "--model-dir", model_dir, "-q"]) == 0
    seen = fake_minilm.texts_seen
    capsys.readouterr()
    assert main(["embed", str(tmp_path / "t.parquet"), "--model-dir", model_dir, "--device", device, "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"v0lite embed: error: the encoder cannot run on device {device!r}: "), err
    assert "Fix: pass --device cpu" in err and err.count("\n") == 1, err
    assert ("CUDA device" in err) == device.startswith("cuda"), err
    assert fake_minilm.texts_seen == seen  # refused before any embedding


def test_device_cpu_needs_no_check(tmp_path, small_log, fake_minilm, capsys, monkeypatch):
    def never(device):  # pragma: no cover - the failure
        raise AssertionError("checked")

    monkeypatch.setattr("v0lite.commands.embed._check_device", never)
    model_dir = _model_dir(tmp_path, small_log)
    pl.DataFrame({"prompt": ["a question?"]}).write_parquet(tmp_path / "t.parquet")
    assert main(["embed", str(tmp_path / "t.parquet"), "--model-dir", model_dir, "--device", "cpu", "-q"]) == 0


def test_a_null_prompt_is_named_as_missing_not_as_the_wrong_column(tmp_path, small_log, fake_minilm, capsys):
    """Issue: {"prompt": null} said "'None' is neither text nor chat messages. Fix: --prompt-key COLUMN": the
    column was right, the row's value was missing."""
    model_dir = _model_dir(tmp_path, small_log)
    (tmp_path / "t.jsonl").write_text('{"prompt": "a?"}\n{"prompt": null}\n')
    assert main(["embed", str(tmp_path / "t.jsonl"), "--model-dir", model_dir, "-q"]) == 1
    err = capsys.readouterr().err
    assert "column 'prompt', row 1: has no prompt (null)" in err and "remove the row" in err, err
    assert "--prompt-key" not in err and "None" not in err and err.count("\n") == 1, err


def test_long_prompts_read_from_the_cache_count_as_cached(tmp_path, small_log, fake_minilm, capsys):
    """Issue: a prompt longer than the encoder's window is cached under its own key, but embed counted it
    by its plain key: each rerun said it was "embedded now" though it came from the cache."""
    model_dir = _model_dir(tmp_path, small_log)
    long_a, long_b = "a" * 1500 + " end", "b" * 2500 + " end"
    pl.DataFrame({"prompt": [long_a, "short one", long_a, "short one", long_b]}).write_ndjson(tmp_path / "d.jsonl")
    embed = ["embed", str(tmp_path / "d.jsonl"), "--model-dir", model_dir, "-q"]
    assert main(embed) == 0
    assert "3 unique prompts of 5 rows: 3 embedded now, 0 already" in capsys.readouterr().out
    seen = fake_minilm.texts_seen
    for _ in range(2):  # a new process each time would read the same shards; so does this one
        assert main(embed) == 0
        assert "3 unique prompts of 5 rows: 0 embedded now, 3 already" in capsys.readouterr().out
    assert fake_minilm.texts_seen == seen


def test_an_invisible_prompt_is_named_by_its_file_row(tmp_path, small_log, fake_minilm, capsys):
    """Issue: a prompt of a zero-width space only passed the first check (str.strip keeps it), then was
    refused with the row of the deduplicated list and neither the file nor the column."""
    model_dir = _model_dir(tmp_path, small_log)
    pl.DataFrame({"prompt": ["ok one"] * 3 + ["\u200b\u2060"]}).write_ndjson(tmp_path / "d.jsonl")
    assert main(["embed", str(tmp_path / "d.jsonl"), "--model-dir", model_dir, "-q"]) == 1
    err = capsys.readouterr().err
    assert f"DATASET {tmp_path / 'd.jsonl'}: column 'prompt', row 3: value" in err
    assert "is empty or whitespace (invisible format characters such as U+200B" in err
