"""Prompt twins in a history (log.py): texts that differ only by case, spaces or Unicode normalisation are
different prompts to v0lite, and validate_log says so (a warning naming an example and the fix); padded policy
names likewise."""

from __future__ import annotations

import unicodedata
import warnings

import pytest

from v0lite.exceptions import V0liteWarning
from v0lite.log import validate_log


@pytest.mark.parametrize(
    "twin",
    ["What is 2+2? ", "what is 2+2?", "What  is 2+2?", unicodedata.normalize("NFD", "Qu'est-ce que 2+2 ? é")],
)
def test_a_history_with_prompt_twins_warns_with_an_example_and_the_fix(twin):
    base = "Qu'est-ce que 2+2 ? é" if twin.startswith("Qu") else "What is 2+2?"
    log = {"policy": ["a", "a", "b"], "prompt": [base, twin, "other"], "score": [1.0, 0.0, 1.0]}
    with pytest.warns(V0liteWarning, match=r"2 distinct prompts differ .* only by case, spaces") as rec:
        out = validate_log(log)
    assert out["prompt"].to_list() == log["prompt"]  # nothing rewritten: the texts stay as logged
    text = str(rec[0].message)
    assert repr(base) in text and "Fix:" in text and "NFC" in text and "(1 group;" in text


def test_distinct_prompts_and_queries_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_log({"policy": ["a", "b"], "prompt": ["What is 2+2?", "What is 2+3?"], "score": [1.0, 0.0]})
        # queries to predict (no score needed) are not a history: no fold or hiding reads them
        validate_log({"policy": ["a", "a"], "prompt": ["x", "x "]}, require_score=False)


def test_a_history_with_padded_policy_names_warns_with_the_count_an_example_and_the_fix():
    log = {"policy": ["pol0", "pol0 ", " pol1", "pol2"], "prompt": ["x", "y", "z", "w"], "score": [1.0, 0.0, 1.0, 0.5]}
    with pytest.warns(V0liteWarning, match=r"2 policy names have leading or trailing spaces") as rec:
        out = validate_log(log)
    assert out["policy"].to_list() == log["policy"]  # nothing stripped: a padded name is its own policy
    text = str(rec[0].message)
    assert "' pol1'" in text and "another policy than 'pol1'" in text and "Fix: strip the names" in text
    with warnings.catch_warnings():  # unpadded names, and queries (not a history), do not warn
        warnings.simplefilter("error")
        validate_log({"policy": ["pol0", "pol 1"], "prompt": ["x", "y"], "score": [1.0, 0.0]})
        validate_log({"policy": ["pol0 "], "prompt": ["x"]}, require_score=False)


def test_a_step_holding_one_row_per_policy_is_named_with_the_fix(recwarn):
    """A 'step' that is a timestamp or a row counter: each (policy, step) holds one row, which kNN and the
    features read against its own step's mean (itself), so those rows say nothing; the history is accepted
    with a warning that says so. A real checkpoint column (many prompts per step) says nothing."""
    import polars as pl

    rows = {"policy": ["a"] * 30 + ["b"] * 30, "prompt": [f"q{i}" for i in range(30)] * 2, "score": [1.0, 0.0] * 30}
    with pytest.warns(
        V0liteWarning, match=r"60 of 60 \(policy, step\) groups hold a single row.*Fix: put the checkpoint"
    ):
        validate_log(pl.DataFrame({**rows, "step": list(range(60))}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_log(pl.DataFrame({**rows, "step": [0] * 10 + [1] * 20 + [0] * 15 + [1] * 15}))
        validate_log(pl.DataFrame({**rows, "step": list(range(60))}), require_score=False)  # queries: nothing said
        validate_log(pl.DataFrame({k: v[:10] for k, v in {**rows, "step": list(range(60))}.items()}))  # a small batch
