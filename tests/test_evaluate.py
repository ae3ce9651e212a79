"""Tests of v0lite.routing: hull/AIQ, APGR/CPT, oracle, kNN baseline, route_eval, plot, CLI."""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import polars as pl
import pytest

from v0lite.exceptions import DataError, V0liteError, V0liteWarning
from v0lite.routing import (
    knn_router_baseline,
    plot_frontiers,
    route_eval,
)

SKILL = {"small": 0.25, "mid": 0.55, "big": 0.85}


PRICE = {"small": 0.1, "mid": 0.3, "big": 1.0}


def _level(prompt: str) -> float:
    return int(prompt.split()[-1]) / 10.0


def _true_p(policy: str, prompt: str) -> float:
    return float(np.clip(SKILL[policy] + 0.5 - _level(prompt), 0.02, 0.98))


class FakeValueModel:
    """Knows the true success probability (a perfect value model) and records fit calls."""

    def __init__(self):
        self.fitted = False

    def fit(self, X, y):
        assert {"policy", "prompt"} <= set(X.columns) and len(y) == X.height
        self.fitted = True
        return self

    def predict(self, X):
        return np.array([_true_p(a, b) for a, b in zip(X["policy"].to_list(), X["prompt"].to_list())])


class FakeEmbedder:
    def encode(self, texts):
        ang = np.array([_level(t) for t in texts]) * np.pi / 2
        return np.stack([np.cos(ang), np.sin(ang)], axis=1).astype(np.float32)


def _log(n: int, seed: int, policies=tuple(SKILL), cost=True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        prompt = f"s{seed} q{i} level {rng.integers(0, 10)}"
        for p in policies:
            row = {"policy": p, "prompt": prompt, "score": float(rng.uniform() < _true_p(p, prompt))}
            if cost:
                row["cost"] = PRICE[p] * (1.0 + 0.2 * _level(prompt))
            rows.append(row)
    return pl.DataFrame(rows)


def test_route_eval_task_reference(logs):
    train, test = logs
    # the task is the difficulty level: a task-mean router then routes nearly as well as a perfect model
    add_task = pl.col("prompt").str.split(" ").list.last().alias("task")
    res = route_eval(
        train.with_columns(add_task),
        test.with_columns(add_task),
        value_model=FakeValueModel(),
        embedder=FakeEmbedder(),
        tuned_ks=(16, 32),
    )
    assert 0 < res["baseline_task_aiq"] <= 1 and res["curves"]["baseline_task"]["cost"]
    assert res["baseline_task_aiq"] > res["random_mix_aiq"]
    # inside one level every prompt has the same true p: no prompt-level signal is left to rank
    assert res["within_task_auc"] == pytest.approx(0.5)
    assert res["baseline_knn_tuned_within_task_auc"] is not None
    # one task for all: the within-task AUC is the plain AUC, and the task router is the mean router
    one = route_eval(
        train.with_columns(task=pl.lit("t")),
        test.with_columns(task=pl.lit("t")),
        value_model=FakeValueModel(),
        embedder=FakeEmbedder(),
        tuned_ks=None,
    )
    assert one["within_task_auc"] > 0.7
    assert one["baseline_task_max_acc"] == pytest.approx(one["best_single_acc"])
    # without the column the keys are there, empty
    res = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), tuned_ks=None)
    assert res["baseline_task_aiq"] is None and res["within_task_auc"] is None


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def logs():
    return _log(150, seed=1), _log(120, seed=2)


def test_route_eval_end_to_end(logs, tmp_path):
    train, test = logs
    test = test.filter(~((pl.col("prompt") == test["prompt"][0]) & (pl.col("policy") == "mid")))
    vm = FakeValueModel()
    with pytest.warns(V0liteWarning, match="1 test prompts"):
        res = route_eval(train, test, value_model=vm, embedder=FakeEmbedder(), k_baseline=16)
    assert vm.fitted
    assert res["n_test"] == 119 and res["n_test_incomplete"] == 1 and res["n_policies"] == 3
    json.dumps(res, allow_nan=False)  # JSON-ready
    keys = {
        "aiq",
        "max_acc",
        "best_single_acc",
        "best_single_model",
        "best_single_cost",
        "cost_at_best_single_acc",
        "cost_save",
        "oracle_acc",
        "oracle_cost",
        "baseline_knn_aiq",
        "baseline_knn_max_acc",
        "n_test",
        "n_policies",
        "curves",
    }
    assert keys <= set(res)
    assert res["best_single_model"] == "big" and res["cost_source"] == "log"
    assert res["oracle_acc"] >= res["max_acc"] >= res["best_single_acc"] - 0.05
    assert res["oracle_cost"] < res["best_single_cost"]
    # a perfect value model beats random mixing of the models
    assert res["aiq"] > res["random_mix_aiq"]
    assert 0 < res["aiq"] <= 1 and 0 < res["baseline_knn_aiq"] <= 1 and res["baseline_knn_k"] == 16
    # the tuned kNN baseline: k chosen on train folds, scored on test like the others
    cv = res["baseline_knn_tuned_cv"]
    assert res["baseline_knn_tuned_k"] in cv["k"] and cv["criterion"] == "aiq"
    assert max(cv["score"]) == cv["score"][cv["k"].index(res["baseline_knn_tuned_k"])]
    assert 0 < res["baseline_knn_tuned_aiq"] <= 1 and 0 < res["baseline_knn_tuned_max_acc"] <= 1
    assert res["curves"]["baseline_knn_tuned_hull"]["cost"]
    # tuned_ks with the fixed k only reproduces the plain baseline; None skips the tuned one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)  # the incomplete test prompt again
        same = route_eval(
            train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), k_baseline=16, tuned_ks=(16,)
        )
        skip = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), tuned_ks=None)
    assert same["baseline_knn_tuned_k"] == 16 and same["baseline_knn_tuned_aiq"] == same["baseline_knn_aiq"]
    assert skip["baseline_knn_tuned_aiq"] is None and skip["curves"]["baseline_knn_tuned"] is None
    assert res["c_max"] == pytest.approx(max(res["curves"]["single"]["cost"]))
    if res["cost_at_best_single_acc"] is not None:
        assert res["cost_save"] == pytest.approx(1 - res["cost_at_best_single_acc"] / res["best_single_cost"])
    assert "apgr" not in res


def test_route_eval_shrink(logs):
    train, test = logs
    res = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), shrink=0.5)
    assert res["shrink"] == 0.5 and res["prior_k"] is None
    base = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder())
    assert base["shrink"] == 0.0 and base["aiq"] != res["aiq"]
    res = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), shrink="cv", cv=3)
    assert 0.0 <= res["shrink"] <= 1.0 and res["aiq"] > 0


def test_route_eval_two_models_and_strategies(logs):
    train, test = (d.filter(pl.col("policy") != "mid") for d in logs)
    res = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), k_baseline=16)
    assert res["weak_model"] == "small" and res["strong_model"] == "big"
    assert 0.5 < res["apgr"] <= 1.5 and res["baseline_knn_apgr"] is not None
    assert res["baseline_knn_tuned_apgr"] is not None
    assert res["cpt_50"] is None or 0 <= res["cpt_50"] <= res["cpt_80"] <= 1
    for strategy in ("threshold", "budget", "quality-target"):
        r = route_eval(
            train,
            test,
            value_model=FakeValueModel(),
            embedder=FakeEmbedder(),
            k_baseline=16,
            strategy=strategy,
            n_knobs=16,
        )
        assert r["strategy"] == strategy and r["aiq"] > 0
        assert r["max_acc"] >= r["best_single_acc"] - 0.05


def test_route_eval_without_costs(logs):
    train, test = (d.drop("cost") for d in logs)
    with pytest.warns(V0liteWarning, match="costs 1"):
        res = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder())
    assert res["cost_source"] == "unit" and res["aiq"] is None and res["baseline_knn_aiq"] is None
    assert res["baseline_knn_tuned_aiq"] is None and res["baseline_knn_tuned_cv"]["criterion"] == "acc"
    assert 0 < res["baseline_knn_tuned_max_acc"] <= res["oracle_acc"]
    assert res["best_single_acc"] > 0 and res["oracle_acc"] >= res["max_acc"]
    res = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), prices=PRICE)
    assert res["cost_source"] == "prices" and res["aiq"] is not None
    with pytest.raises(DataError, match="prices"):
        route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), prices={"big": 1.0})
    with pytest.raises(V0liteError, match="utility"):
        route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), strategy="nope")


def test_plot_frontiers_atomic(logs, tmp_path):
    train, test = logs
    res = route_eval(train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), n_knobs=8)
    out = tmp_path / "sub" / "plot.png"
    plot_frontiers(res, out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in out.parent.iterdir()] == ["plot.png"]  # no temp file left


def test_route_eval_cli(logs, tmp_path, monkeypatch, capsys):
    from v0lite.commands import route as cmd

    monkeypatch.setattr(cmd, "_make_value_model", lambda args: FakeValueModel())
    monkeypatch.setattr(cmd, "_make_embedder", lambda args: FakeEmbedder())
    train, test = logs
    train.write_ndjson(tmp_path / "train.jsonl")
    test.write_csv(tmp_path / "test.csv")
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "route-eval",
            str(tmp_path / "train.jsonl"),
            str(tmp_path / "test.csv"),
            "--json",
            str(tmp_path / "r.json"),
            "--plot",
            str(tmp_path / "r.png"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "aiq" in printed and "best_single_model" in printed and "baseline_knn_tuned_aiq" in printed
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["n_test"] == 120 and saved["aiq"] is not None
    assert (tmp_path / "r.png").exists()
    args = parser.parse_args(
        [
            "route-eval",
            str(tmp_path / "train.jsonl"),
            str(tmp_path / "test.csv"),
            "--json",
            str(tmp_path / "s.json"),
            "--shrink",
            "0.3",
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        assert args.func(args) == 0
    assert json.loads((tmp_path / "s.json").read_text())["shrink"] == 0.3
    assert cmd._shrink_arg("CV") == "cv" and cmd._shrink_arg("none") is None and cmd._shrink_arg("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="e.g. --shrink cv"):
        cmd._shrink_arg("lots")


# ------------------------------------------------------------------ per task and baselines


class TableValueModel:
    """Predicts a fixed table of p (policy, prompt) -> p; fitting does nothing."""

    def __init__(self, table):
        self.table = table

    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.array([self.table[(a, b)] for a, b in zip(X["policy"].to_list(), X["prompt"].to_list())])


def _per_task_case():
    prompts = ["t1 q 0", "t1 q 1", "t2 q 0"]
    tasks = ["t1", "t1", "t2"]
    p = {"a": [0.9, 0.2, 0.6], "b": [0.1, 0.8, 0.4]}  # top choice: a, b, a
    y = {"a": [1.0, 0.0, 0.0], "b": [0.0, 0.0, 1.0]}  # chosen outcomes 1, 0, 0
    table = {(pol, q): p[pol][i] for pol in p for i, q in enumerate(prompts)}
    test = pl.DataFrame(
        [{"policy": pol, "prompt": q, "score": y[pol][i], "task": tasks[i]} for pol in p for i, q in enumerate(prompts)]
    )
    train = pl.DataFrame(
        [
            {"policy": pol, "prompt": f"tr q {i}", "score": float((i + j) % 2), "task": "t1"}
            for j, pol in enumerate(p)
            for i in range(6)
        ]
    )
    return train, test, table


def test_route_eval_per_task_hand_checked():
    train, test, table = _per_task_case()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)  # unit costs
        res = route_eval(
            train,
            test,
            value_model=TableValueModel(table),
            embedder=FakeEmbedder(),
            tuned_ks=None,
            per_task=True,
            baselines=False,
        )
    # t1: a on q0 (1), b on q1 (0) -> 0.5; t2: a on q0 (0) -> 0.0; mean over tasks 0.25 (not 1/3 per prompt)
    assert res["task_acc"] == {"t1": 0.5, "t2": 0.0}
    assert res["mean_task_acc"] == pytest.approx(0.25)
    assert res["max_acc"] == pytest.approx(1 / 3)
    assert res["oracle_task_acc"] == {"t1": 0.5, "t2": 1.0} and res["task_n"] == {"t1": 2, "t2": 1}
    assert "baselines" not in res
    with (
        pytest.raises(DataError, match=r"per-task accuracy needs .*missing in TEST.*set per_task=False"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", V0liteWarning)
        route_eval(train, test.drop("task"), value_model=TableValueModel(table), embedder=FakeEmbedder(), per_task=True)


def test_route_eval_baselines(logs):
    from v0lite.baselines import available_baselines

    train, test = logs
    add_task = (pl.col("prompt").str.split(" ").list.last().cast(pl.Int64) >= 5).cast(pl.Utf8).alias("task")
    train, test = train.with_columns(add_task), test.with_columns(add_task)
    lines = []
    res = route_eval(
        train,
        test,
        value_model=FakeValueModel(),
        embedder=FakeEmbedder(),
        tuned_ks=(16, 32),
        per_task=True,
        n_boot=200,
        progress=lines.append,
    )
    json.dumps(res, allow_nan=False)
    b = res["baselines"]
    assert set(b) == {label for label, _, _ in available_baselines()}
    assert {"prior", "knn", "ridge"} <= set(b)
    for r in b.values():
        assert {
            "aiq",
            "max_acc",
            "mean_task_acc",
            "task_acc",
            "within_policy_auc",
            "within_task_auc",
            "diff",
            "loses",
            "chance",
        } <= set(r)
        for metric in ("aiq", "mean_task_acc"):
            d = r["diff"][metric]
            assert d["ci_low"] <= d["estimate"] <= d["ci_high"] and d["n_boot"] == 200
        assert r["diff"]["aiq"]["estimate"] == pytest.approx(res["aiq"] - r["aiq"])
        assert r["diff"]["mean_task_acc"]["estimate"] == pytest.approx(res["mean_task_acc"] - r["mean_task_acc"])
    # the tuned kNN row is the tuned kNN router's p (k by CV), here routed with the router's cost model
    assert b["knn"]["params"]["k"] == res["baseline_knn_tuned_k"]
    # the prior is prompt-blind: 0.5 inside each policy by construction, and the perfect value model beats it
    assert b["prior"]["within_policy_auc"] == pytest.approx(0.5)
    assert b["prior"]["chance"] is False and b["prior"]["ranks_within"] is False  # 0.5 by construction
    assert b["prior"]["diff"]["aiq"]["ci_low"] > 0 and "prior" not in res["loses_to"]
    assert res["within_policy_auc"] > 0.7 and not res["chance"]
    assert any("prior" in line for line in lines)
    again = route_eval(
        train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), tuned_ks=(16, 32), per_task=True, n_boot=200
    )
    assert again["baselines"]["ridge"]["diff"] == b["ridge"]["diff"]  # seeded


def test_route_eval_cli_per_task_and_no_baselines(logs, tmp_path, monkeypatch, capsys):
    from v0lite.commands import route as cmd

    monkeypatch.setattr(cmd, "_make_value_model", lambda head, random_state=0, encoder="plain": FakeValueModel())
    monkeypatch.setattr(cmd, "_make_embedder", lambda encoder="plain": FakeEmbedder())
    add_task = pl.col("prompt").str.split(" ").list.last().alias("task")
    train, test = (f.with_columns(add_task) for f in logs)
    train.write_ndjson(tmp_path / "train.jsonl")
    test.write_ndjson(tmp_path / "test.jsonl")
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    base = ["route-eval", str(tmp_path / "train.jsonl"), str(tmp_path / "test.jsonl")]
    args = parser.parse_args([*base, "--per-task", "--json", str(tmp_path / "r.json")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "per task" in out and "mean over tasks" in out and "baselines (" in out and "d_aiq" in out
    assert "baseline prior: within-policy AUC 0.5000 (its predictions do not rank prompts within a policy" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert set(saved["task_acc"]) == set(test["task"].unique()) and "prior" in saved["baselines"]
    assert saved["mean_task_acc"] == pytest.approx(np.mean(list(saved["task_acc"].values())))
    assert saved["baseline_knn_tuned_k"] is not None and "baseline_knn_tuned_aiq" in out  # the default keeps it
    args = parser.parse_args([*base, "--no-baselines", "--json", str(tmp_path / "n.json")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "baselines (" not in out and "baseline_knn_tuned" not in out  # the tuned kNN is skipped too
    skipped = json.loads((tmp_path / "n.json").read_text())
    assert "baselines" not in skipped
    assert skipped["baseline_knn_tuned_k"] is None and skipped["baseline_knn_tuned_cv"] is None
    assert skipped["baseline_knn_aiq"] == saved["baseline_knn_aiq"]  # the fixed-k kNN stays


def test_printed_baselines_tell_the_knn_row_from_the_tuned_knn_figures(capsys):
    """Issue: the baselines table's knn row and baseline_knn_tuned_aiq are one router priced two ways;
    the printout gave them one name and two numbers."""
    from v0lite.commands._route_report import print_route_baselines

    d = {"estimate": 0.01, "ci_low": -0.01, "ci_high": 0.03, "n_boot": 10}
    row = {"aiq": 0.84, "diff": {"aiq": d}, "within_policy_auc": 0.6, "within_task_auc": None, "loses": []}
    print_route_baselines({"baselines": {"knn": row}, "baseline_knn_tuned_k": 128, "within_policy_auc": 0.6})
    out = capsys.readouterr().out
    assert "knn (k by CV): the tuned kNN router's success predictions with this router's cost predictions" in out
    print_route_baselines({"baselines": {"prior": row}, "baseline_knn_tuned_k": 128, "within_policy_auc": 0.6})
    assert "tuned kNN router's success predictions" not in capsys.readouterr().out


# ------------------------------------------------------------------ probe: route-eval's notes and the new-model kNN


def _cli_logs(logs, tmp_path, monkeypatch, value_model=FakeValueModel, train_cost=True):
    """TRAIN and TEST files for `main(["route-eval", ...])`, with the fake value model and embedder."""
    from v0lite.commands import route as cmd

    monkeypatch.setattr(cmd, "_make_value_model", lambda args: value_model())
    monkeypatch.setattr(cmd, "_make_embedder", lambda args: FakeEmbedder())
    train, test = logs
    (train if train_cost else train.drop("cost")).write_ndjson(tmp_path / "train.jsonl")
    test.write_ndjson(tmp_path / "test.jsonl")
    return str(tmp_path / "train.jsonl"), str(tmp_path / "test.jsonl")


def test_route_eval_cli_prior_k_note_says_what_the_prior_is_with_a_weight(logs, tmp_path, monkeypatch, capsys):
    """Probe 4: with --shrink 0.3 the prior_k line said 'no shrinkage'."""
    from v0lite.cli import main

    tr, te = _cli_logs(logs, tmp_path, monkeypatch)
    assert main(["route-eval", tr, te, "--shrink", "0.3", "--no-baselines", "-q"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("prior_k "))
    assert "all its train prompts" in line and "no shrinkage" not in line


def test_route_eval_unit_costs_say_which_log_lacks_cost_and_the_fix(logs, tmp_path, monkeypatch, capsys):
    """Probe 7a: 'no cost column in both logs' when only TRAIN lacked it, and no fix."""
    from v0lite.cli import main

    train, test = logs
    with pytest.warns(
        V0liteWarning, match=r"the train log has no 'cost' column.*Fix: .*prices=\{model: USD per call\}"
    ):
        route_eval(train.drop("cost"), test, value_model=FakeValueModel(), embedder=FakeEmbedder(), tuned_ks=None)
    tr, te = _cli_logs(logs, tmp_path, monkeypatch, train_cost=False)
    assert main(["route-eval", tr, te, "--no-baselines", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"TRAIN {tr} has no 'cost' column (the other log has one)" in err and "--prices FILE" in err
    assert f"`v0lite data prices {te} prices.json`" in err and "prices=" not in err and "both logs" not in err


def test_route_eval_cli_per_task_without_task_speaks_flags(logs, tmp_path, monkeypatch, capsys):
    """Probe 7c: the CLI's error began 'per_task=True needs ...'."""
    from v0lite.cli import main

    tr, te = _cli_logs(logs, tmp_path, monkeypatch)
    assert main(["route-eval", tr, te, "--per-task", "--no-baselines", "-q"]) == 1
    err = capsys.readouterr().err
    assert "needs a 'task' column in both logs" in err and "drop --per-task" in err and "per_task" not in err


def test_route_eval_new_model_knn_baseline_fits_each_model_on_its_own_prompts(
    logs, tmp_path, monkeypatch, capsys, make_model
):
    """Probe 3: with --new-model and --n < k the kNN baseline was fitted on the n prompts complete for every
    model, so it was prompt-blind for the whole pool yet reported as the kNN router."""
    from v0lite.cli import main
    from v0lite.routing import UtilityStrategy
    from v0lite.routing._evaluate import _hold_out, _pivot
    from v0lite.routing._frontier import _sweep

    train, test = logs
    pols = ["big", "mid", "small"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        res = route_eval(
            train,
            test,
            value_model=make_model(),
            embedder=FakeEmbedder(),
            k_baseline=16,
            tuned_ks=None,
            baselines=False,
            new_model="big",
            new_n=5,
        )
    assert res["baseline_knn_train_n"] == {"mid": 150, "small": 150, "big": 5}
    # the spec: the pool before it on its complete train prompts, the new model on its 5 drawn ones
    held, _ = _hold_out(train, pols, "big", 5, 0)
    prompts, Ytr, Ctr = _pivot(held, pols, None)
    te_prompts, Y, Ctrue = _pivot(test, pols, None)
    enc = FakeEmbedder().encode
    P, C = np.empty_like(Y), np.empty_like(Y)
    for cols in ([1, 2], [0]):
        rows = ~np.isnan(Ytr[:, cols]).any(axis=1)
        seen = [t for t, ok in zip(prompts, rows) if ok]
        P[:, cols], C[:, cols] = knn_router_baseline(
            enc(seen), Ytr[rows][:, cols], Ctr[rows][:, cols], enc(te_prompts), 16
        )
    assert not np.allclose(P[:, 1], P[0, 1])  # the others stay prompt-aware
    want = _sweep(UtilityStrategy(), P, C, Y, Ctrue, 64)
    np.testing.assert_allclose(res["curves"]["baseline_knn"]["acc"], want["acc"])
    np.testing.assert_allclose(res["curves"]["baseline_knn"]["cost"], want["cost"])
    # the report says what the baseline saw
    tr, te = _cli_logs(logs, tmp_path, monkeypatch, value_model=make_model)
    argv = ["route-eval", tr, te, "--new-model", "big", "--n", "5", "--k-baseline", "16", "--no-baselines", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "the pool before 'big' on the 150 complete for it, 'big' on its 5" in out
    assert "note: ['big'] had <= k=16 train prompts" in out and "prompt-blind" in out


def test_route_eval_says_no_chance_verdict_on_fewer_prompts_than_the_minimum():
    """Probe: `chance` was True on two test prompts while evaluate and the printed report gave no verdict."""
    from v0lite.baselines import MIN_VERDICT_PROMPTS

    class Backwards(FakeValueModel):  # ranks every policy's prompts the wrong way round
        def predict(self, X):
            return 1.0 - super().predict(X)

    class Flat(FakeValueModel):  # ranks nothing: 0.5 by construction, no verdict at any size
        def predict(self, X):
            return np.full(X.height, 0.5)

    train = _log(30, 0)
    kw = dict(embedder=FakeEmbedder(), baselines=False, tuned_ks=None)
    few = route_eval(train, _log(MIN_VERDICT_PROMPTS - 1, 1), value_model=Backwards(), **kw)
    assert few["within_policy_auc"] < 0.5 and few["ranks_within"] and few["chance"] is False
    many = route_eval(train, _log(40, 2), value_model=Backwards(), **kw)
    assert many["within_policy_auc"] < 0.5 and many["chance"] is True
    flat = route_eval(train, _log(40, 2), value_model=Flat(), **kw)
    assert flat["within_policy_auc"] == pytest.approx(0.5) and not flat["ranks_within"] and flat["chance"] is False
