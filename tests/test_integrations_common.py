"""What the trainer adapters share: prompt text, fixed-size selection, group outcomes, lazy imports."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from v0lite import RolloutPlanner
from v0lite.exceptions import DataError, ParameterError, V0liteError, V0liteWarning
from v0lite.rl.integrations import FixedSizeSelector, prompt_text
from v0lite.rl.integrations._common import MAX_LAG, candidate_chunks, group_outcomes, n_candidates


class Table:
    def __init__(self, p):
        self.p, self.history = p, []

    def predict(self, X):
        return np.array([self.p[q] for q in X["prompt"].to_list()])

    def add_history(self, X, y):
        self.history.append((X["prompt"].to_list(), X["step"].to_list(), X["n"].to_list(), list(y)))
        return self


def test_import_loads_no_trainer_stack():
    code = (
        "import sys, v0lite.rl.integrations as m; from v0lite.rl.integrations import OpenRLHFPlanner; "
        "print(sorted(k for k in ('torch', 'trl', 'verl', 'transformers') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("adapter, package", [("_trl", "trl"), ("_verl", "torch")])
def test_missing_package_gives_install_hint(monkeypatch, adapter, package):
    extra = adapter[1:]
    # None in sys.modules makes ``import package`` fail as if it were not installed; its loaded
    # submodules stay where they are (removing torch's would leave two copies of it in the process)
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.delitem(sys.modules, f"v0lite.rl.integrations.{adapter}", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'v0lite\[{extra}\]'"):
        importlib.import_module(f"v0lite.rl.integrations.{adapter}")


def test_prompt_text_from_verl_and_trl_rows():
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": [{"type": "text", "text": "and 3+3?"}, {"type": "image"}]},
    ]
    assert prompt_text("plain") == "plain"
    assert prompt_text(msgs) == "Be brief.\n2+2?\n4\nand 3+3?"
    assert prompt_text(np.array(msgs, dtype=object), "user") == "2+2?\nand 3+3?"
    assert prompt_text(msgs, "last_user") == "and 3+3?"
    with pytest.raises(ValueError, match="messages"):
        prompt_text(msgs, "bot")
    with pytest.raises(TypeError, match="prompt_text=callable"):
        prompt_text({"question": "x"})


def test_band_keeps_in_band_then_nearest():
    p = {"a": 0.05, "b": 0.5, "c": 0.95, "d": 0.7, "e": 0.15}
    sel = FixedSizeSelector(RolloutPlanner(Table(p)), band=(0.2, 0.8))
    texts = list(p)
    assert [texts[i] for i in sel.choose(texts, 2)] == ["b", "d"]
    assert [texts[i] for i in sel.choose(texts, 3)] == ["b", "d", "e"]  # e is 0.05 from the band, a 0.15
    assert sel.n_filled_ == 1 and sel.step_ == 2 and sel.n_candidates_ == 10


def test_p_mixed_uses_the_planners_belief():
    p = {"a": 0.02, "b": 0.35, "c": 0.5, "d": 0.98}
    sel = FixedSizeSelector(RolloutPlanner(Table(p)), mode="p-mixed", group_size=4)
    assert sel.choose(list(p), 2).tolist() == [1, 2]


def test_observe_uses_the_planned_step_and_checks_lengths():
    table = Table({"a": 0.5, "b": 0.5, "c": 0.5, "zz": 0.5})
    sel = FixedSizeSelector(RolloutPlanner(table))
    sel.choose(["a", "b"], 2)  # step 0
    sel.choose(["b", "c"], 2)  # step 1, planned before step 0's outcomes came back (prefetch)
    sel.observe(["a", "b", "zz"], [1, 2, 0], [2, 4, 4])
    sel.observe(["b", "c"], [1, 2], [4, 4])
    fed = [(q, st) for qs, sts, _, _ in table.history for q, st in zip(qs, sts)]
    # b's first outcome is step 0's, its second step 1's; an unplanned prompt gets the latest step
    assert sorted(fed) == [("a", 0), ("b", 0), ("b", 1), ("c", 1), ("zz", 1)]
    with pytest.raises(ValueError, match="one success count"):
        sel.observe(["a"], [1, 1], [2, 2])
    sel.choose(["a", "b"], 1)  # planned at step 2 and never rolled out ...
    for _ in range(MAX_LAG + 1):
        sel.choose(["c"], 1)
    table.history.clear()
    sel.observe(["a", "b"], [1, 1], [2, 2])  # ... so a much later outcome gets the latest step, not 2
    assert {st for _, sts, _, _ in table.history for st in sts} == {sel.step_ - 1}


def test_group_outcomes_counts_successes_and_skips_nan():
    keys, s, m = group_outcomes(["x", "y", "x", "y", "z"], [1.0, 0.0, 0.2, np.nan, np.nan], threshold=0.5)
    assert keys == ["x", "y", "z"] and s.tolist() == [1, 0, 0] and m.tolist() == [2, 1, 0]


def test_selector_with_a_real_value_model(make_model):
    """V0Regressor (kNN head, fake encoder) behind the planner: its frames, steps and n go through."""
    import polars as pl

    hist = {"easy add": 1.0, "hard prove": 0.0, "fair sort": 0.5}
    rows = [(f"{t} case {i}", s) for t, s in hist.items() for i in range(6)]
    log = pl.DataFrame(
        {
            "policy": ["pol"] * len(rows),
            "prompt": [q for q, _ in rows],
            "score": [s for _, s in rows],
            "step": [0] * len(rows),
        }
    )
    model = make_model().fit(log)
    sel = FixedSizeSelector(RolloutPlanner(model, policy="pol"), band=(0.2, 0.8))
    cands = [f"{t} case {i}" for t in hist for i in (40, 41)]
    kept = [cands[i] for i in sel.choose(cands, 2)]
    assert all(q.startswith("fair") for q in kept), (kept, sel.last_p_)
    before = model.predict(pl.DataFrame({"policy": ["pol"], "prompt": [kept[0]], "step": [1]}))[0]
    sel.observe(kept, [0, 0], [8, 8])  # both failed every rollout
    after = model.predict(pl.DataFrame({"policy": ["pol"], "prompt": [kept[0]], "step": [1]}))[0]
    assert after < before  # the outcome reached the model's context


def test_selector_state_round_trips_as_json_and_step_mapping_is_checked(guarantees):
    import json

    p = {f"q{i}": 0.1 * (i % 9) + 0.05 for i in range(8)}
    a = FixedSizeSelector(RolloutPlanner(Table(p)), step_offset=3, step_scale=2, random_state=1)
    a.choose(list(p), 2)
    state = json.loads(json.dumps(a.state_dict()))
    b = FixedSizeSelector(RolloutPlanner(Table(p)), step_offset=3, step_scale=2, random_state=99)
    b.load_state_dict(state)
    assert b.step_ == 1 and b.history_step(b.step_) == 5
    assert list(a.choose(list(p), 3)) == list(b.choose(list(p), 3))  # same RNG draw for the tie-breaks
    bad = [
        (lambda: FixedSizeSelector(RolloutPlanner(Table(p)), step_offset=-1), "step_offset"),
        (lambda: FixedSizeSelector(RolloutPlanner(Table(p)), step_scale=0), "step_scale"),
        (lambda: b.load_state_dict({"format": "other"}), "v0lite-selector-1"),
    ]
    for make, message in bad:
        with pytest.raises(ValueError, match=message):
            make()
    guarantees.tick("bad-input cases tried", len(bad))


@pytest.mark.parametrize("bit_generator", ["PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937"])
def test_selector_state_round_trips_any_numpy_bit_generator(bit_generator):
    """A random_state Generator of another kind than PCG64 (Philox, SFC64...): its state held arrays (not JSON)
    and was loaded into a fresh PCG64, which refused it. The next choices after save and load are those without."""
    p = {f"q{i}": 0.5 for i in range(20)}  # all in the band: the choice is the tie-break's

    def selector(rng):
        return FixedSizeSelector(RolloutPlanner(Table(p)), random_state=rng)

    a = selector(np.random.Generator(getattr(np.random, bit_generator)(7)))
    a.choose(list(p), 3)
    b = selector(0)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert type(b._rng.bit_generator).__name__ == bit_generator
    assert [list(a.choose(list(p), 3)) for _ in range(4)] == [list(b.choose(list(p), 3)) for _ in range(4)]


def test_a_selector_state_of_an_unknown_bit_generator_is_refused_naming_numpys(guarantees):
    sel = FixedSizeSelector(RolloutPlanner(Table({"a": 0.5, "b": 0.5})))
    before = json.dumps(sel.state_dict())
    for name in ("Xoshiro256", None):
        bad = {**sel.state_dict(), "rng": {"bit_generator": name, "state": {}}}
        with pytest.raises(ValueError, match=rf"bit generator {name!r}, not one of numpy's \(PCG64, .*Philox, SFC64"):
            sel.load_state_dict(bad)
        assert json.dumps(sel.state_dict()) == before  # nothing changed
    guarantees.tick("bad-input cases tried", 2)


def test_mode_spellings_and_bad_band_say_what_to_fix(guarantees):
    p = {"a": 0.02, "b": 0.35, "c": 0.5, "d": 0.98}
    sel = FixedSizeSelector(RolloutPlanner(Table(p)), mode="P_Mixed", group_size=4)  # - and _ alike
    assert sel.mode == "p-mixed" and sel.choose(list(p), 2).tolist() == [1, 2]
    bad = [
        ({"mode": "best"}, r"mode: unknown selection mode 'best'; valid names: \['band', 'p-mixed'\]"),
        ({"band": 0.5}, r"band must be two numbers \[lo, hi\].*got 0.5. Fix: band=\[0.2, 0.8\]"),
        ({"band": "0.2,0.8"}, r"band must be two numbers.*got '0.2,0.8'"),
        ({"band": (0.2, 0.5, 0.8)}, r"band must be two numbers"),
        ({"group_size": 2.5}, r"group_size must be an int >= 2"),
    ]
    for kw, message in bad:
        with pytest.raises(ParameterError, match=message):
            FixedSizeSelector(RolloutPlanner(Table(p)), **kw)
    with pytest.raises(ParameterError, match=r"oversample must be a number >= 1.*'2'"):
        n_candidates(4, "2")
    with pytest.raises(DataError, match=r"the dataset is empty \(0 prompts\)"):
        candidate_chunks(0, 4, seed=0, epoch=0)
    guarantees.tick("bad-input cases tried", len(bad) + 2)


def test_selector_warns_once_when_no_outcome_comes_back():
    p = {f"q{i}": 0.5 for i in range(4)}
    sel = FixedSizeSelector(RolloutPlanner(Table(p)), no_outcome_fix="call the hook.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            sel.choose(list(p), 2)
    with pytest.warns(V0liteWarning, match=r"3 steps planned and no outcome came back.*Fix: call the hook\."):
        sel.choose(list(p), 2)
    fed = FixedSizeSelector(RolloutPlanner(Table(p)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sel.choose(list(p), 2)  # once
        for step in range(6):
            kept = [list(p)[i] for i in fed.choose(list(p), 2)]
            if step == 1:  # outcomes arrive late (the trainer's lag), but they arrive
                fed.observe(kept, [1, 1], [2, 2])


def test_selector_observe_refuses_rates_before_casting_them_to_counts():
    """A rate of 0.5 given as a success count was cast to 0 silently; it is refused like the planner refuses it."""
    from v0lite.exceptions import ParameterError

    table = Table({"a": 0.5, "b": 0.5})
    sel = FixedSizeSelector(RolloutPlanner(table))
    sel.choose(["a", "b"], 2)
    with pytest.raises(ParameterError, match="whole numbers"):
        sel.observe(["a", "b"], [0.5, 0.5], [4, 4])
    assert not table.history  # nothing was fed


def _v0lite_warnings(make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
    return [str(w.message) for w in caught if issubclass(w.category, V0liteWarning)]


def test_planner_selection_settings_the_adapters_do_not_use_are_warned_naming_their_setting():
    """An adapter keeps a fixed share at the trainer's group size: the planner's own selection settings say so."""
    from v0lite.rl.integrations import OpenRLHFPlanner, VerlSampler

    p = {f"q{i}": 0.5 for i in range(8)}
    rows = [{"prompt": q} for q in p]
    assert _v0lite_warnings(lambda: FixedSizeSelector(RolloutPlanner(Table(p)))) == []  # defaults: nothing to say
    custom = {"keep_fraction": 0.25, "strategy": "random", "budget_per_prompt": 4, "n_min": 3, "n_max": 4}
    custom |= {"value": "knapsack", "random_state": 3}
    said = _v0lite_warnings(lambda: FixedSizeSelector(RolloutPlanner(Table(p), **custom)))
    assert len(said) == len(custom)
    for (name, v), msg in zip(custom.items(), said):
        assert msg.startswith(f"RolloutPlanner({name}={v!r}) is not used by the adapter")
    assert "pass oversample=4 to the adapter" in said[0] and "mode='p-mixed'" in said[1]
    with warnings.catch_warnings(record=True) as caught:  # a selector built here, with an adapter's terms
        warnings.simplefilter("always")
        FixedSizeSelector(RolloutPlanner(Table(p), keep_fraction=0.25), planner_terms={"adapter": "MyTrainer"})
    assert [w.filename for w in caught] == [__file__]  # the warning names this line, not the caller's caller
    # a planner setting written another way than its default, but the same, is the default
    assert _v0lite_warnings(lambda: FixedSizeSelector(RolloutPlanner(Table(p), strategy="P-Mixed"))) == []
    # each adapter names its own setting
    planner = RolloutPlanner(Table(p), keep_fraction=0.25)
    (glue,) = _v0lite_warnings(lambda: OpenRLHFPlanner(planner))
    assert "Fix: pass keep_fraction=0.25 to OpenRLHFPlanner and leave the planner's keep_fraction" in glue
    (verl,) = _v0lite_warnings(lambda: VerlSampler(rows, planner, batch_size=2))
    assert "Fix: pass oversample=4 to VerlSampler" in verl
    # VerlSampler's group_size left unset is the planner's budget_per_prompt: used, so not warned
    planner = RolloutPlanner(Table(p), budget_per_prompt=4)
    assert _v0lite_warnings(lambda: VerlSampler(rows, planner, batch_size=2)) == []
    (given,) = _v0lite_warnings(lambda: VerlSampler(rows, planner, batch_size=2, group_size=8))
    assert "budget_per_prompt=4" in given and "actor_rollout_ref.rollout.n" in given
    planner = RolloutPlanner(Table(p), keep_fraction=0.25)
    for build in (lambda: OpenRLHFPlanner(planner), lambda: VerlSampler(rows, planner, batch_size=2)):
        with warnings.catch_warnings(record=True) as caught:  # each adapter's warning names the user's line
            warnings.simplefilter("always")
            build()
        assert {w.filename for w in caught if issubclass(w.category, V0liteWarning)} == {__file__}


class Refusing(Table):
    """Fails ``add_history`` for rows of one prompt, as a full disk would."""

    def __init__(self, p, refuse):
        super().__init__(p)
        self.refuse = refuse

    def add_history(self, X, y):
        if self.refuse in X["prompt"].to_list():
            raise OSError("disk refused")
        return super().add_history(X, y)


def test_observe_checks_every_step_before_writing_and_keeps_the_plan_on_bad_input():
    table = Table({"a": 0.5, "b": 0.5, "zz": float("nan")})  # "zz": the value model cannot predict it
    sel = FixedSizeSelector(RolloutPlanner(table))
    sel.choose(["a"], 1)  # step 0
    sel.choose(["b"], 1)  # step 1
    with pytest.raises(V0liteError, match=r"returned nan for prompt 0 \('zz'\)"):
        sel.observe(["a", "b", "zz"], [1, 1, 1], [2, 2, 2])  # a is step 0's group, zz is predicted at step 1
    assert table.history == [] and sel.n_observed_ == 0  # step 0's group was not written
    assert sel._planned == {"a": [(0, 0.5)], "b": [(1, 0.5)]}  # nothing taken off the plan
    sel.observe(["a", "b"], [1, 1], [2, 2])  # the retry records each at its planned step, once
    assert sorted((q, st) for qs, sts, _, _ in table.history for q, st in zip(qs, sts)) == [("a", 0), ("b", 1)]


def test_a_batch_spanning_steps_is_recorded_by_one_add_history_whole_or_not_at_all():
    """Each step's groups went through their own add_history: a refusal at the second step left the
    first step's written, and a retry of the whole batch wrote them again at the latest step."""
    table = Refusing({"a": 0.5, "b": 0.5, "c": 0.5}, refuse="b")
    sel = FixedSizeSelector(RolloutPlanner(table))
    for q in "abc":
        sel.choose([q], 1)  # steps 0, 1, 2
    with pytest.raises(OSError, match="disk refused"):
        sel.observe(["a", "b"], [1, 1], [2, 2])
    assert table.history == [] and sel.n_observed_ == 0
    assert sel._planned["a"] == [(0, 0.5)] and sel._planned["b"] == [(1, 0.5)]  # both keep their planned step
    table.refuse = None
    assert sel.observe(["a", "b"], [1, 1], [2, 2]) == 2  # the whole retry: each at its own step, once
    assert [h[:2] for h in table.history] == [(["a", "b"], [0, 1])] and sel.n_observed_ == 2


def test_a_bad_selector_state_changes_nothing_and_says_to_pass_state_dict(guarantees):
    sel = FixedSizeSelector(RolloutPlanner(Table({"a": 0.5, "b": 0.5})))
    sel.choose(["a", "b"], 1)
    before, planned = json.dumps(sel.state_dict()), dict(sel._planned)
    bad_rng = {"format": "v0lite-selector-1", "step": 40, "rng": {"bit_generator": "MT19937"}, "counters": [0] * 4}
    for bad in [{"format": "v0lite-selector-1"}, bad_rng, {**sel.state_dict(), "counters": [1, 2]}]:
        with pytest.raises(ValueError, match=r"pass what state_dict\(\) returned"):
            sel.load_state_dict(bad)
        assert json.dumps(sel.state_dict()) == before and sel._planned == planned
    guarantees.tick("bad-input cases tried", 3)
