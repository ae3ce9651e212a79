"""The unknown-policy error (_log_warnings.py) that V0Regressor.predict and predict_with_ray share: the first bad
row of the caller's frame, the count, the known name meant, then the caller's own fix."""

from __future__ import annotations

import numpy as np
import polars as pl

from v0lite._log_warnings import unknown_policy_error
from v0lite.exceptions import UnknownPolicyError


def test_unknown_policy_error_names_the_first_row_the_count_the_near_name_and_the_fix():
    policies = pl.Series(["a", "Pol1", "b", "zz", "Pol1"])
    err = unknown_policy_error(policies, np.array([0, 1, 0, 1, 1], bool), ["a", "b", "pol1"], "do X.", where=" in M")
    assert isinstance(err, UnknownPolicyError)
    assert str(err) == (
        "column 'policy', row 1: policy 'Pol1' has no history in M (2 unknown policies: ['Pol1', 'zz'])."
        " Did you mean 'pol1'? Fix: do X."
    )
    one = str(unknown_policy_error(policies, policies == "zz", ["a"], "do Y."))
    assert one.startswith("column 'policy', row 3: policy 'zz' has no history (1 unknown policy: ['zz']).")
    assert "Did you mean" not in one and one.endswith("Fix: do Y.")
