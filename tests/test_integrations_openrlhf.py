"""OpenRLHF glue against the planner interface (OpenRLHF itself does not install on CPU).

The loop below repeats what OpenRLHF's samples generator does with a prompt iterator and a
filter hook (pull ``(datasources, prompts, labels)`` batches until the target, roll each prompt
out ``n_samples_per_prompt`` times, pass each group to ``filter_hook.apply``); the experiences
are stand-ins with OpenRLHF's ``prompts`` / ``scores`` fields. Not a run inside OpenRLHF.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from v0lite import RolloutPlanner
from v0lite.exceptions import ParameterError, V0liteWarning
from v0lite.rl.integrations import OpenRLHFPlanner

N = 4  # n_samples_per_prompt


class RunningValue:
    """Predicts each prompt's mean outcome so far (0.5 unseen): a value model that learns from feedback."""

    def __init__(self):
        self.s, self.n, self.calls = {}, {}, []

    def predict(self, X):
        return np.array([self.s[q] / self.n[q] if q in self.n else 0.5 for q in X["prompt"].to_list()])

    def add_history(self, X, y):
        self.calls.append((X["prompt"].to_list(), X["step"].to_list(), X["n"].to_list()))
        for q, n, v in zip(X["prompt"].to_list(), X["n"].to_list(), np.asarray(y)):
            self.s[q] = self.s.get(q, 0.0) + v * n
            self.n[q] = self.n.get(q, 0) + n
        return self


TRUE_P = {f"p{i}": p for i, p in enumerate([0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])}


def _batches(rng, n_batches):
    """The prompt dataloader: every prompt once per batch, shuffled."""
    names = list(TRUE_P)
    for _ in range(n_batches):
        pick = rng.permutation(len(names))
        yield (["math"] * len(names), [names[i] for i in pick], [f"label-{names[i]}" for i in pick])


def _generate_batch(target_prompts, dataloader_iter, hook):
    """OpenRLHF's generate_batch, minus the model: collect prompts, roll out, filter each group."""
    prompts, labels = [], []
    while len(prompts) < target_prompts:
        try:
            _, ps, ls = next(dataloader_iter)
        except StopIteration:
            break
        remaining = target_prompts - len(prompts)
        prompts.extend(ps[:remaining])
        labels.extend(ls[:remaining])
    kept = []
    for q, lab in zip(prompts, labels):
        assert lab == f"label-{q}"  # labels stay aligned with their prompts
        # exactly N * p successes: the loop's behaviour, not sampling noise, is under test
        group = [
            SimpleNamespace(prompts=[q], labels=[lab], scores=np.array([float(i < N * TRUE_P[q])])) for i in range(N)
        ]
        kept.extend(hook.apply(group))
    return prompts, kept


def test_feedback_closes_the_loop_sure_prompts_stop_being_rolled_out():
    rng = np.random.default_rng(0)
    value = RunningValue()
    glue = OpenRLHFPlanner(RolloutPlanner(value), keep_fraction=0.5, n_samples_per_prompt=N)
    hook = glue.filter_hook()
    it = glue.wrap(_batches(rng, 200))
    rolled = []
    for _ in range(12):
        prompts, kept = _generate_batch(4, it, hook)
        rolled.append(prompts)
        assert len(kept) == len(prompts) * N  # no reward_range: every full group is kept
    hook.reset()
    sure = {q for q, p in TRUE_P.items() if p in (0.0, 1.0)}
    late = {q for r in rolled[4:] for q in r}
    assert {q for r in rolled[:2] for q in r} & sure  # unseen prompts look like 0.5 at first
    assert not late & sure, "once observed as always-pass/always-fail, a prompt leaves the band"
    fed = [q for qs, _, _ in value.calls for q in qs]
    assert sorted(fed) == sorted(q for r in rolled for q in r)  # every rolled group was fed back once
    assert {n for _, _, ns in value.calls for n in ns} == {N}


def test_hook_reward_range_filters_like_dynamic_filtering_and_drops_short_groups():
    value = RunningValue()
    glue = OpenRLHFPlanner(RolloutPlanner(value), n_samples_per_prompt=N)
    hook = glue.filter_hook(reward_range=(0.0, 1.0))

    def group(q, scores):
        return [SimpleNamespace(prompts=[q], scores=np.array([s])) for s in scores]

    assert hook.apply(group("a", [1, 1, 1, 1])) == []
    assert len(hook.apply(group("b", [1, 0, 1, 0]))) == N
    assert hook.apply(group("c", [1, 0])) == []  # not n_samples_per_prompt: dropped, not counted
    assert hook.pass_rate() == pytest.approx(50.0)
    assert glue.flush() == 2 and value.s == {"a": 4.0, "b": 2.0}
    hook.reset()
    assert hook.pass_rate() is None


def test_wrap_keeps_types_and_alignment():
    import torch

    glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), keep_fraction=0.5, n_samples_per_prompt=N)
    batch = (np.array(["d0", "d1", "d2", "d3"]), ["q0", "q1", "q2", "q3"], torch.arange(4))
    src, prompts, labels = next(glue.wrap([batch]))
    assert isinstance(src, np.ndarray) and isinstance(labels, torch.Tensor) and len(prompts) == 2
    assert [int(x) for x in labels] == [int(q[1]) for q in prompts] == [int(d[1]) for d in src]


def test_bad_input_says_what_to_fix(guarantees):
    planner = RolloutPlanner(RunningValue())
    with pytest.raises(ValueError, match="keep_fraction"):
        OpenRLHFPlanner(planner, keep_fraction=0)
    glue = OpenRLHFPlanner(planner)
    with pytest.raises(ValueError, match="prompt_field"):
        next(glue.wrap([(["q0"],)]))
    with pytest.raises(ValueError, match="parallel"):
        next(glue.wrap([(["d"], ["q0", "q1"], ["l0", "l1"])]))
    for odd in (None, 3, "q0"):  # a raw TypeError from len() (or a string read letter by letter) before
        with pytest.raises(ValueError, match=r"field 2 is a (NoneType|int|str), not a sequence"):
            next(glue.wrap([(["d"], ["q0"], odd)]))
    guarantees.tick("bad-input cases tried", 6)


def _group(q, scores):
    return [SimpleNamespace(prompts=[q], scores=np.array([s])) for s in scores]


def test_groups_of_another_size_than_n_samples_per_prompt_are_an_error(guarantees):
    glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), n_samples_per_prompt=8)
    hook = glue.filter_hook()
    assert hook.apply(_group("a", [1, 0, 1, 0])) == [] and hook.apply(_group("b", [1, 0, 1, 0])) == []
    with pytest.raises(
        ParameterError, match=r"n_samples_per_prompt=8\) .* a group of 4 samples \(3 groups.*, none of 8\).*"
    ):
        hook.apply(_group("c", [1, 0, 1, 0]))
    with pytest.raises(
        ParameterError, match=r"a group of 9 samples: .*Fix: .*n_samples_per_prompt=args.n_samples_per_prompt"
    ):
        glue.filter_hook().apply(_group("d", [1] * 9))  # larger than a full group: at once
    hook = glue.filter_hook()
    assert len(hook.apply(_group("e", [1, 0] * 4))) == 8
    for q in "fghij":  # after full groups, a short one is dropped samples, as OpenRLHF's own hook drops it
        assert hook.apply(_group(q, [1, 0])) == []
    guarantees.tick("bad-input cases tried", 2)


def test_prompts_planned_without_the_filter_hook_warn_and_keep_fraction_1_selects_nothing():
    rng = np.random.default_rng(0)
    glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), keep_fraction=0.5, n_samples_per_prompt=N)
    it = glue.wrap(_batches(rng, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):  # 2 rollout batches' worth at keep_fraction 0.5: the generator's own look-ahead
            next(it)
    with pytest.warns(
        V0liteWarning, match=r"4 steps planned and no outcome came back.*filter_hook=glue.filter_hook\(\)"
    ):
        next(it)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with the hook: no warning
        fed = OpenRLHFPlanner(RolloutPlanner(RunningValue()), keep_fraction=0.5, n_samples_per_prompt=N)
        it, hook = fed.wrap(_batches(rng, 40)), fed.filter_hook()
        for _ in range(12):
            _generate_batch(4, it, hook)
    with pytest.warns(V0liteWarning, match=r"keep_fraction=1 keeps every prompt .*nothing is selected"):
        OpenRLHFPlanner(RolloutPlanner(RunningValue()), keep_fraction=1.0)


def test_reward_range_and_success_threshold_are_checked_when_built(guarantees):
    glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), n_samples_per_prompt=N)
    for bad in [(1.0, 0.0), (0.5, 0.5), "01", (0.0, float("nan")), 0.5, (0.0, 1.0, 2.0)]:
        with pytest.raises(ParameterError, match=r"reward_range must be two numbers \(lo, hi\) with lo < hi.*Fix"):
            glue.filter_hook(reward_range=bad)
    assert glue.filter_hook(reward_range=[-1, 1]).reward_range == (-1.0, 1.0)  # -1/1 scores: not limited to [0, 1]
    for bad in [float("nan"), "0.5", None, True]:
        with pytest.raises(ParameterError, match=r"success_threshold must be a number.*Fix: success_threshold=0.5"):
            OpenRLHFPlanner(RolloutPlanner(RunningValue()), success_threshold=bad)
    guarantees.tick("bad-input cases tried", 10)


def test_keep_fraction_follows_the_planners_rounding_and_warns_once_when_it_keeps_every_prompt():
    from v0lite.rl._common import _n_keep

    def kept(fraction, n):
        glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), keep_fraction=fraction, n_samples_per_prompt=N)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return len(glue.select([f"q{i}" for i in range(n)]))

    for fraction, n in [(0.5, 5), (0.5, 3), (0.3, 5), (0.1, 4), (0.7, 7)]:
        assert kept(fraction, n) == _n_keep(n, fraction)
    assert kept(0.5, 5) == 3  # 2.5 rounds half up, as RolloutPlanner does (Python's round gave 2)
    for fraction, n in [(0.9, 4), (0.3, 1)]:
        glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), keep_fraction=fraction, n_samples_per_prompt=N)
        with pytest.warns(V0liteWarning, match=rf"keep_fraction={fraction:g} keeps all {n} prompts.*nothing is sel"):
            glue.select([f"q{i}" for i in range(n)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once
            glue.select([f"q{i}" for i in range(n)])


def test_scores_of_any_shape_with_one_value_are_read_and_others_are_an_error(guarantees):
    import torch

    from v0lite.exceptions import DataError

    value = RunningValue()
    glue = OpenRLHFPlanner(RolloutPlanner(value), n_samples_per_prompt=2)
    hook = glue.filter_hook()
    shapes = {"0d": torch.tensor(1.0), "1d": torch.tensor([1.0]), "list": [1.0], "float": 1.0, "np0d": np.float64(1)}
    for q, score in shapes.items():
        assert len(hook.apply([SimpleNamespace(prompts=[q], scores=score)] * 2)) == 2
    glue.flush()
    assert value.s == {q: 2.0 for q in shapes}
    for bad in [torch.tensor([]), None, "high"]:
        with pytest.raises(DataError, match=r"an Experience's scores must hold its sample's score"):
            hook.apply([SimpleNamespace(prompts=["x"], scores=bad)] * 2)
    guarantees.tick("bad-input cases tried", 3)


def test_a_policy_with_no_history_is_refused_before_the_first_batch(make_model, small_log, guarantees):
    from v0lite.exceptions import UnknownPolicyError

    planner = RolloutPlanner(make_model().fit(small_log), policy=small_log["policy"][0])
    planner.policy = "qwen-grpo"  # changed after the planner was built: the glue checks it again
    with pytest.raises(UnknownPolicyError, match=r"policy='qwen-grpo': policy 'qwen-grpo' has no history.*Fix"):
        OpenRLHFPlanner(planner)
    guarantees.tick("bad-input cases tried")


def test_an_empty_prompt_text_names_the_prompt_and_messages(guarantees):
    from v0lite.exceptions import DataError

    glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), messages="user", n_samples_per_prompt=N)
    batch = [[{"role": "user", "content": "2+2?"}], [{"role": "system", "content": "Be brief."}]]
    with pytest.raises(DataError, match=r"prompt 1 of the batch: the prompt's text .* is empty.*Fix: messages='all'"):
        glue.select(batch)
    guarantees.tick("bad-input cases tried")


def test_nan_scores_count_neither_way_and_a_group_of_nan_records_nothing():
    """As in the TRL and verl adapters: an unscorable sample is left out of its group, not counted a failure."""
    value = RunningValue()
    glue = OpenRLHFPlanner(RolloutPlanner(value), n_samples_per_prompt=N)
    hook = glue.filter_hook()
    nan = float("nan")
    assert len(hook.apply(_group("p4", [nan, nan, 1.0, 1.0]))) == N  # kept for training: OpenRLHF's choice
    assert len(hook.apply(_group("p5", [nan] * N))) == N
    hook.apply(_group("p6", [nan, 0.0, 1.0, 1.0]))
    glue.flush()
    assert [(c[0], c[2]) for c in value.calls] == [(["p4", "p6"], [2, 3])]  # p5: no outcome
    assert value.s == {"p4": 2.0, "p6": 2.0}  # p4: 2 of 2 scored samples passed, not 2 of 4


def test_a_failing_flush_keeps_every_queued_outcome_for_the_next_one():
    class Refusing(RunningValue):
        refuse = True

        def add_history(self, X, y):
            if self.refuse:
                raise OSError("disk refused")
            return super().add_history(X, y)

    value = Refusing()
    glue = OpenRLHFPlanner(RolloutPlanner(value), keep_fraction=0.5, n_samples_per_prompt=2)
    next(glue.wrap(iter([(["d"] * 4, ["a", "b", "c", "e"], [0] * 4)])))
    hook = glue.filter_hook()
    for q in "abce":
        hook.apply(_group(q, [1.0, 0.0]))
    with pytest.raises(OSError, match="disk refused"):
        glue.flush()
    assert len(glue._pending) == 4  # nothing recorded, nothing dropped
    value.refuse = False
    assert glue.flush() == 4 and value.n == {q: 2 for q in "abce"} and glue._pending == []


def test_experiences_holding_several_scores_or_prompts_are_refused_and_nothing_is_recorded(guarantees):
    import torch

    from v0lite.exceptions import DataError

    glue = OpenRLHFPlanner(RolloutPlanner(RunningValue()), n_samples_per_prompt=2)
    hook = glue.filter_hook()
    packed = [SimpleNamespace(prompts=["a"], scores=torch.tensor([1.0, 0.0]))] * 2
    with pytest.raises(DataError, match=r"experience 0 of the group: .*scores .*got 2 values.*Fix: pass the hook one"):
        hook.apply(packed)
    ok = SimpleNamespace(prompts=["a"], scores=[1.0])
    with pytest.raises(DataError, match=r"experience 1 of the group: .*scores .*got 3 values"):
        hook.apply([ok, SimpleNamespace(prompts=["a"], scores=np.array([1.0, 1.0, 0.0]))])
    with pytest.raises(DataError, match=r"experience 0 of the group: .*prompts .*got 2 values"):
        hook.apply([SimpleNamespace(prompts=["a", "b"], scores=[1.0])] * 2)
    with pytest.raises(DataError, match=r"experience 1 of the group: .*prompts .*got 2 values"):
        hook.apply([ok, SimpleNamespace(prompts=["a", "b"], scores=[1.0])])  # packed beyond the first: read too
    with pytest.raises(DataError, match=r"prompts must be a list .*got a str"):
        hook.apply([SimpleNamespace(prompts="abc", scores=[1.0])] * 2)  # would be read as its first letter
    assert glue._pending == [] and hook.total_groups == 0 and hook.valid_groups == 0
    guarantees.tick("bad-input cases tried", 5)
