"""The exception classes' own data: a ``DataError`` about one column carries it as ``column``."""

from __future__ import annotations

import pytest

from v0lite.exceptions import DataError, UnknownPolicyError
from v0lite.log import validate_log

GOOD = {"policy": ["a", "b"], "prompt": ["p", "q"], "score": [0.5, 1.0]}


@pytest.mark.parametrize(
    "bad, column",
    [
        ({"score": [0.5, 1.5]}, "score"),
        ({"score": [0.5, None]}, "score"),
        ({"score": ["x", "y"]}, "score"),
        ({"step": [0, 0.5]}, "step"),
        ({"n": [1, 0]}, "n"),
        ({"cost": [0.1, -1.0]}, "cost"),
        ({"prompt": ["p", " "]}, "prompt"),
        ({"policy": ["a", None]}, "policy"),
        ({"prompt": ["p", 5]}, "prompt"),
        ({"prompt": [["p"], ["q"]]}, "prompt"),
    ],
)
def test_a_column_check_says_its_column_on_the_error(bad, column):
    with pytest.raises(DataError) as e:
        validate_log({**GOOD, **bad})
    assert e.value.column == column and f"column {column!r}" in str(e.value), str(e.value)


def test_column_is_none_unless_given_and_the_message_is_unchanged():
    with pytest.raises(DataError) as e:
        validate_log({"policy": ["a"], "prompt": ["p"]})
    assert e.value.column == "score" and str(e.value).startswith("missing required column 'score'")
    assert DataError("x").column is None and UnknownPolicyError("y").column is None
    err = DataError("column 'n', row 3: bad.", column="n")
    assert str(err) == "column 'n', row 3: bad." and err.args == ("column 'n', row 3: bad.",) and err.column == "n"
