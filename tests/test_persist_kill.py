"""Crash-safe replace: a save killed at every step of its replace leaves a loadable model, and the next
load cleans up what the killed save left."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.conftest import FakeEncoder, make_log
from tests.test_persist import _KILL_SCRIPT, ROOT
from v0lite.estimator import V0Regressor

_KILL_STEPS = {
    "swap": ["tmp", "filled", "meta", "swapped", "swapped+partial", "done"],
    "rename": ["tmp", "filled", "meta", "moved-old", "renamed", "renamed+partial", "done"],
}


@pytest.mark.parametrize(
    ("mode", "step"), [(mode, step) for mode, steps in _KILL_STEPS.items() for step in steps], ids=str
)
def test_killed_save_leaves_a_loadable_model_and_the_next_load_cleans_up(tmp_path, make_model, guarantees, mode, step):
    """A process killed (os._exit) after each step of a save over an existing model: the next load finds
    the old model or the new one, restores or removes the hidden leftovers, and says so."""
    import subprocess
    import sys
    import warnings

    from v0lite.exceptions import V0liteWarning

    log = make_log(steps=True)
    old, new = make_model().fit(log), make_model(head="prior").fit(make_log(seed=5, steps=True))
    path, src = tmp_path / "model", tmp_path / "src"
    old.save(path)
    new.save(src)
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    r = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(src), str(path), step, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 77, r.stderr  # killed right after the step
    guarantees.tick("faults injected")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        back = V0Regressor.load(path, encoder=FakeEncoder())
    said = [str(w.message) for w in caught if issubclass(w.category, V0liteWarning)]
    # before the swap the old model is at the path (a crash between the two renames: restored); after it, the new
    swapped = step.split("+")[0] in ("swapped", "renamed", "done")
    np.testing.assert_array_equal(back.predict(log), (new if swapped else old).predict(log))
    assert sorted(q.name for q in tmp_path.iterdir()) == ["model", "src"]  # no leftovers
    assert bool(said) == bool(leftovers), (said, leftovers)
    if step == "moved-old":
        assert any("restored" in s for s in said), said
    # and the next save over it works
    old.save(path)
    np.testing.assert_array_equal(V0Regressor.load(path, encoder=FakeEncoder()).predict(log), old.predict(log))
