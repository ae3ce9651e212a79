"""How the service names the library's refusal of outcome rows (serve/_requests.py): the JSON field
``outcomes[i].<field>``, its field read from the ``DataError``'s ``column``, never parsed from its text."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import polars as pl
import pytest

from tests.serve_util import serve_in_thread, tiny_router
from v0lite import log as log_module
from v0lite.exceptions import DataError
from v0lite.serve import create_app
from v0lite.serve._models import ApiError
from v0lite.serve._requests import check_outcome_rows
from v0lite.serve._state import ServeState

ROW = {"policy": "a", "prompt": "add the numbers case 1", "score": 0.25}


def test_a_field_the_library_refuses_answers_422_naming_it(tmp_path, monkeypatch, guarantees):
    """Checks the request model lacks (here a stricter library: steps up to 5, scores doubled) refuse a row:
    the 422 names ``outcomes[i].<field>`` from ``DataError.column``, whatever the message's words."""
    router, real = tiny_router(), log_module.validate_log  # the router is fitted before the library turns strict

    def stricter(frame, **kw):
        if "step" in frame.columns and (frame["step"] > 5).any():  # a message that names no column
            raise DataError("a step past the run's last step. Fix: send steps 0 to 5.", column="step")
        return real(frame.with_columns(pl.col("score") * 2), **kw)

    monkeypatch.setattr(log_module, "validate_log", stricter)
    app = create_app(router, data_dir=tmp_path / "store")
    with serve_in_thread(app) as base:
        for rows, field, value, said in (
            ([ROW, {**ROW, "step": 9}], "outcomes[1].step", 9, "a step past the run's last step"),
            ([ROW, ROW, {**ROW, "score": 0.75}], "outcomes[2].score", 0.75, "column 'score', row 2: value 1.5"),
        ):
            r = httpx.post(base + "/v1/feedback", json={"outcomes": rows}, timeout=20)
            err = r.json()["error"]
            assert r.status_code == 422 and err["param"] == field and err["value"] == value, r.text
            assert err["message"].startswith(f"{field}: the outcome log refuses it ({said}"), r.text
            assert err["fix"] == f'correct "{field}" (or leave an optional field out).'
        assert httpx.get(base + "/v1/stats", timeout=20).json()["feedback_rows"] == 0  # nothing stored
    guarantees.tick("bad-input cases tried", 2)


def test_the_field_named_is_the_failing_rows_own():
    """The batch's refusal may be about another row (score is checked before step): the field named is the
    one the first failing row is refused for, so the row and its field agree."""
    state = SimpleNamespace(check_rows=lambda rows: ServeState.check_rows(None, rows))
    rows = [{**ROW, "step": 2**70}, {**ROW, "step": 1, "score": 1.5}]  # one frame: its score fails first
    with pytest.raises(ApiError) as e:
        check_outcome_rows(state, rows)
    assert e.value.param == "outcomes[0].step" and e.value.value == 2**70, e.value.message
    with pytest.raises(ApiError) as e:  # a refusal about no column present in the row: the row alone
        check_outcome_rows(SimpleNamespace(check_rows=_no_column), [ROW])
    assert e.value.param == "outcomes[0]" and e.value.value is None


def _no_column(rows):
    raise DataError("the log has no rows. Fix: pass at least one outcome row.")


def test_invisible_only_text_is_blank_as_in_the_outcome_log(tmp_path, guarantees):
    """The service's blank check is the log's (``log.is_blank``): a prompt or policy of invisible format
    characters only (U+200B, U+FEFF, U+2060) is refused, as ``validate_log`` refuses it, not routed or stored."""
    app = create_app(tiny_router(), data_dir=tmp_path / "store")
    with serve_in_thread(app) as base:
        for path, body, field in (
            ("/v1/route", {"prompts": ["ok", "\u200b"]}, "prompts[1]"),
            ("/v1/predict", {"prompts": ["\ufeff\u200b\u2060"]}, "prompts[0]"),
            ("/v1/feedback", {"outcomes": [ROW, {**ROW, "prompt": "\u2060 "}]}, "outcomes[1].prompt"),
        ):
            r = httpx.post(base + path, json=body, timeout=20)
            err = r.json()["error"]
            assert r.status_code == 422 and err["param"] == field and "blank" in err["message"], r.text
        assert httpx.get(base + "/v1/stats", timeout=20).json()["feedback_rows"] == 0
    guarantees.tick("bad-input cases tried", 3)
