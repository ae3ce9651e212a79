"""v0lite._progress: bars and timed stages on stderr, silent when disabled or short."""

from __future__ import annotations

import io
import os
import sys
import time

import numpy as np
import pytest

from v0lite import _progress


@pytest.fixture
def no_delay(monkeypatch):
    monkeypatch.setattr(_progress, "DELAY_S", 0.0)


def test_resolve_terminal_quiet_and_force(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert _progress.resolve() is True
    assert _progress.resolve(quiet=True) is False
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a file: off
    assert _progress.resolve() is False
    assert _progress.resolve(force=True) is True


def test_disabled_bar_and_stage_print_nothing(capsys):
    assert list(_progress.bar(range(3), desc="x", enabled=False)) == [0, 1, 2]
    with _progress.stage("y", enabled=False):
        pass
    assert capsys.readouterr().err == ""


def test_short_waits_print_nothing_even_when_enabled(capsys):
    with _progress.bar(total=2, desc="quick", enabled=True) as b:
        b.update(2)
    with _progress.stage("quick stage", enabled=True):
        pass
    assert capsys.readouterr().err == ""


def test_stage_shows_elapsed_and_done(capsys, no_delay):
    with _progress.stage("fit: gbdt", enabled=True):
        time.sleep(0.6)
    err = capsys.readouterr().err
    assert "fit: gbdt: done in 0." in err


def test_stage_says_stopped_on_error(capsys, no_delay):
    with pytest.raises(RuntimeError):
        with _progress.stage("fit: transformer", enabled=True):
            raise RuntimeError("boom")
    assert "fit: transformer: stopped in" in capsys.readouterr().err


def test_embedding_bar_moves_per_batch_with_prompts_per_second(capsys, no_delay):
    from conftest import FakeEncoder

    from v0lite.embed import Embedder

    class Slow(FakeEncoder):  # slower than tqdm's redraw interval, so every batch is drawn
        def encode(self, texts):
            time.sleep(0.15)
            return super().encode(texts)

    enc = Slow()
    texts = [f"prompt number {i}" for i in range(130)]
    v = Embedder(enc, cache_dir=False, batch_size=64, show_progress_bar=True).encode(texts)
    assert v.shape == (130, 64) and enc.calls == 3  # 64 + 64 + 2: one call per batch, one chunk
    err = capsys.readouterr().err
    assert "embedding" in err and "130/130" in err and "prompt/s" in err
    assert "64/130" in err  # it moved after the first batch, not only at the end
    # the same vectors as one call per chunk would give
    np.testing.assert_allclose(v, Embedder(FakeEncoder(), cache_dir=False, batch_size=1000).encode(texts), atol=1e-6)


def test_fit_stages_are_shown(capsys, no_delay, make_model, small_log):
    make_model(head="gbdt", show_progress_bar=True).fit(small_log)
    err = capsys.readouterr().err
    for stage in ("fit: episodes", "fit: features", "fit: gbdt"):
        assert stage in err, err


def test_quiet_third_party_restores_the_callers_settings(monkeypatch):
    import transformers.utils.logging as tf_logging  # [dev] installs transformers (trl, verl)

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    tf_logging.enable_progress_bar()
    with _progress.quiet_third_party():
        assert not tf_logging.is_progress_bar_enabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert tf_logging.is_progress_bar_enabled()
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ


def test_quiet_third_party_silences_the_hubs_retry_lines_then_restores(capsys):
    """Issue: an unreachable hub printed ~30 "Retrying in 8s" lines during an encoder load."""
    import logging

    import huggingface_hub.utils.logging  # noqa: F401 (its import sets the level: alone, this test saw that)

    hub, http = logging.getLogger("huggingface_hub"), logging.getLogger("urllib3")
    before = hub.level, http.level
    http.setLevel(logging.INFO)  # the caller's own choice
    try:
        with _progress.quiet_third_party():
            logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 8s [Retry 5/5].")
            assert not logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.WARNING)
        assert "Retrying" not in capsys.readouterr().err
        assert (hub.level, http.level) == (before[0], logging.INFO)
    finally:
        http.setLevel(before[1])


def test_a_long_stage_ends_with_its_time_at_the_real_delay(capsys):
    with _progress.stage("fit: gbdt", enabled=True):
        time.sleep(_progress.DELAY_S + 0.6)
    err = capsys.readouterr().err
    assert "fit: gbdt [00:01]" in err and "fit: gbdt: done in 1." in err


def test_a_zero_size_terminal_does_not_hide_the_bars(monkeypatch):
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))
    assert _progress._shape() == {"ncols": 100, "nrows": 50}
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((120, 40)))
    assert _progress._shape() == {"dynamic_ncols": True}


@pytest.fixture
def hub_bars(monkeypatch):
    """huggingface_hub's bar switches, as if its variable were unset at import; its states restored after."""
    import importlib

    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the package's tqdm class hides the module
    saved = dict(hub_tqdm.progress_bar_states)
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    hub_tqdm.progress_bar_states.clear()
    yield hub_tqdm
    hub_tqdm.progress_bar_states.clear()
    hub_tqdm.progress_bar_states.update(saved)


def test_quiet_third_party_keeps_the_users_hub_group_settings(hub_bars):
    """Review: disable_progress_bars() then enable_progress_bars() erased a user's disable("group")."""
    hub_bars.disable_progress_bars("peft.foo")
    hub_bars.enable_progress_bars("peft.foo.bar")
    before = dict(hub_bars.progress_bar_states)
    with _progress.quiet_third_party():
        assert hub_bars.are_progress_bars_disabled()  # every bar off inside
        assert hub_bars.are_progress_bars_disabled("peft.foo.bar")
    assert hub_bars.progress_bar_states == before
    assert hub_bars.are_progress_bars_disabled("peft.foo") and not hub_bars.are_progress_bars_disabled("peft.foo.bar")
    assert not hub_bars.are_progress_bars_disabled()


def test_quiet_third_party_respects_hub_bars_forced_on_without_warning(hub_bars, monkeypatch):
    """HF_HUB_DISABLE_PROGRESS_BARS=0 (the user's choice): no "Cannot disable progress bars" on every load."""
    import warnings

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setattr(hub_bars, "HF_HUB_DISABLE_PROGRESS_BARS", False)  # as the hub reads it at import
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with _progress.quiet_third_party():
            assert not hub_bars.are_progress_bars_disabled()
            assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"
    assert hub_bars.progress_bar_states == {}
