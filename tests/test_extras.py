"""Optional extras: a missing one fails with the one-line ``pip install 'v0lite[...]'`` hint."""

from __future__ import annotations

import sys

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
