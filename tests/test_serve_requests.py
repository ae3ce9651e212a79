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
            ([ROW, ROW, {**ROW, "score": 0.75}], "outcomes[2].score", 0.75, "column 'score', row 0: value 1.5"),
        ):
            r = httpx.post(base + "/v1/feedback", json={"outcomes": rows}, timeout=20)
            err = r.json()["error"]
            assert r.status_code == 422 and err["param"] == field and err["value"] == value, r.text
            assert err["message"].startswith(
                f"{field}: the outcome log refuses this row (checked on its own: {said}"
            ), r.text
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


def test_every_refused_row_is_listed_in_row_order():
    """A batch with several refused rows names the first in the message and lists each (its own field and
    value) in ``error.errors``, as pydantic's field errors are; the fine rows are not listed."""
    state = SimpleNamespace(check_rows=lambda rows: ServeState.check_rows(None, rows))
    rows = [ROW] * 9
    rows[2], rows[5], rows[8] = {**ROW, "score": 1.5}, {**ROW, "step": 2**70}, {**ROW, "prompt": " "}
    with pytest.raises(ApiError) as e:
        check_outcome_rows(state, rows)
    err = e.value.body()["error"]
    assert err["param"] == "outcomes[2].score" and err["value"] == 1.5
    assert "(3 rows refused, listed in error.errors.)" in err["message"]
    assert [(x["param"], x["value"]) for x in err["errors"]] == [
        ("outcomes[2].score", 1.5),
        ("outcomes[5].step", 2**70),
        ("outcomes[8].prompt", " "),
    ]
    assert all(x["fix"] == f'correct "{x["param"]}" (or leave an optional field out).' for x in err["errors"])


def test_refused_rows_are_found_by_halving_and_listed_up_to_the_cap():
    """One bad row at the end of 4,096 costs a few checks of halves, not one check per row; a batch of
    bad rows lists MAX_LISTED of them and says there are at least as many."""
    from v0lite.serve._requests import MAX_LISTED

    calls = []

    def counting(rows):
        calls.append(len(rows))
        ServeState.check_rows(None, rows)

    rows = [ROW] * 4095 + [{**ROW, "score": -1.0}]
    with pytest.raises(ApiError) as e:
        check_outcome_rows(SimpleNamespace(check_rows=counting), rows)
    assert e.value.param == "outcomes[4095].score" and len(e.value.errors) == 1
    assert len(calls) <= 2 * 12 + 1, calls  # the batch, then two halves per level
    with pytest.raises(ApiError) as e:
        check_outcome_rows(SimpleNamespace(check_rows=counting), [{**ROW, "score": 2.0}] * 50)
    assert len(e.value.errors) == MAX_LISTED
    assert [x["param"] for x in e.value.errors] == [f"outcomes[{i}].score" for i in range(MAX_LISTED)]
    assert f"(at least {MAX_LISTED} rows refused" in e.value.message


def test_rows_refused_only_together_name_the_batch():
    """A refusal no single row earns (here: a library that refuses two rows of one prompt) names
    ``outcomes``, not a row that passes alone."""

    def no_twins(rows):
        if len({r["prompt"] for r in rows}) < len(rows):
            raise DataError("two rows of one prompt. Fix: send one.", column="prompt")

    with pytest.raises(ApiError) as e:
        check_outcome_rows(SimpleNamespace(check_rows=no_twins), [ROW, {**ROW, "policy": "b"}])
    assert e.value.param == "outcomes" and e.value.value is None and not getattr(e.value, "errors", None)


def test_a_feedback_batch_names_every_refused_row_over_http(tmp_path, guarantees):
    """The service's own row checks (blank text, an unknown model) name every refused row, each with its
    field and value, in one 422 (``error.errors``), and store nothing; the first is the one in the message."""
    app = create_app(tiny_router(), data_dir=tmp_path / "store")
    rows = [ROW, {**ROW, "prompt": "\u200b"}, ROW, {**ROW, "policy": "gpt-5-typo"}, {**ROW, "policy": "\u2060 "}]
    with serve_in_thread(app) as base:
        r = httpx.post(base + "/v1/feedback", json={"outcomes": rows}, timeout=20)
        err = r.json()["error"]
        assert r.status_code == 422 and err["param"] == "outcomes[1].prompt", r.text
        assert "(3 rows refused, listed in error.errors.)" in err["message"]
        assert [(x["param"], x["value"]) for x in err["errors"]] == [
            ("outcomes[1].prompt", "\u200b"),
            ("outcomes[3].policy", "gpt-5-typo"),
            ("outcomes[4].policy", "\u2060 "),
        ], r.text
        assert "new_policies" in err["errors"][1]["fix"]
        assert httpx.get(base + "/v1/stats", timeout=20).json()["feedback_rows"] == 0
    guarantees.tick("bad-input cases tried", 3)


def test_every_refused_prompt_of_a_batch_is_named(tmp_path, guarantees):
    """/v1/route and /v1/predict name every blank or overlong prompt of a batch in ``error.errors`` (the
    answer's status is the first's), not the first alone; an unknown policy list names each unknown one."""
    from v0lite.serve import Limits

    app = create_app(tiny_router(), data_dir=tmp_path / "store", limits=Limits(max_prompt_chars=50))
    with serve_in_thread(app) as base:
        prompts = ["add the numbers", "\u200b", "sort the list", "x" * 51, "\u2060"]
        for path in ("/v1/route", "/v1/predict"):
            r = httpx.post(base + path, json={"prompts": prompts}, timeout=20)
            err = r.json()["error"]
            assert r.status_code == 422 and err["param"] == "prompts[1]", r.text
            assert [x["param"] for x in err["errors"]] == ["prompts[1]", "prompts[3]", "prompts[4]"], r.text
            assert "(3 prompts refused, listed in error.errors.)" in err["message"]
            assert "--max-prompt-chars" in err["errors"][1]["fix"]
        r = httpx.post(base + "/v1/predict", json={"prompt": "add", "policies": ["a", "zz", "b", "yy"]}, timeout=20)
        err = r.json()["error"]
        assert r.status_code == 422 and [x["param"] for x in err["errors"]] == ["policies[1]", "policies[3]"], r.text
    guarantees.tick("bad-input cases tried", 3)
