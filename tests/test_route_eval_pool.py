"""``route_eval(pool=...)`` / ``route-eval --pool``, and a model with outcomes on few test prompts: the
warning names each model's coverage, too few complete test prompts are refused before any fit with the fix
in the caller's terms; and why a task key is ``-`` when both logs name tasks."""

from __future__ import annotations

import json
import warnings

import polars as pl
import pytest
from conftest import make_log

from v0lite.exceptions import DataError, ParameterError, V0liteWarning

_PRICE = {"pol0": 0.0001, "pol1": 0.001, "pol2": 0.01}


def _logs(n_prompts=40, sparse_test=1):
    """Train and test logs of pol0..pol2 (priced) plus 'tiny', a model with 3 train rows and
    ``sparse_test`` test rows."""
    log = make_log(3, n_prompts, seed=3)
    log = log.with_columns(cost=pl.col("policy").replace_strict(_PRICE, return_dtype=pl.Float64))
    in_test = pl.col("prompt").str.extract(r"case (\d+)").cast(pl.Int64) % 2 == 1
    train, test = log.filter(~in_test), log.filter(in_test)
    tiny = pl.DataFrame({"policy": "tiny", "score": [1.0, 0.0, 1.0], "cost": 1e-5})
    tr_p, te_p = train["prompt"].unique(maintain_order=True), test["prompt"].unique(maintain_order=True)
    train = pl.concat([train, tiny.with_columns(prompt=tr_p[:3])], how="diagonal_relaxed")
    test = pl.concat([test, tiny.head(sparse_test).with_columns(prompt=te_p[:sparse_test])], how="diagonal_relaxed")
    return train, test


class _NoFit:
    """A value model that must not be reached: the checks come before any fit."""

    def fit(self, X, y):
        raise AssertionError("fitted before the pool's checks")


class _NoEmbed:
    def encode(self, texts):
        raise AssertionError("embedded before the pool's checks")


def test_a_sparse_model_is_refused_before_any_fit_naming_it_and_the_fix():
    from v0lite.routing import route_eval

    train, test = _logs()
    with pytest.raises(DataError) as err:
        route_eval(train, test, value_model=_NoFit(), embedder=_NoEmbed(), baselines=False)
    text = str(err.value)
    assert "only 1 of 20 test prompts have an outcome and a cost of every model" in text, text
    assert "'tiny' 1 of 20" in text and text.index("'tiny' 1 of 20") < text.index("Fix:")
    assert "pol0' 20" not in text  # a model on every test prompt is not named as lacking
    assert "Fix: leave 'tiny' out with pool=['pol0', 'pol1', 'pol2']" in text
    assert "new_model='tiny', new_n=<n>" in text
    with pytest.raises(DataError, match=r"first: 'tiny' 1 of 20\)\. Fix: give the test log an outcome") as err:
        route_eval(train, test, value_model=_NoFit(), pool=["pol0", "tiny"])  # one model left: nothing to leave out
    assert "pool=" not in str(err.value)


def test_pool_restricts_both_logs_and_names_unknown_models(make_model):
    from v0lite.routing import route_eval

    train, test = _logs()
    with pytest.raises(DataError, match=r"pool names \['gpt-9'\], not models of both logs .*'pol0', 'pol1'"):
        route_eval(train, test, value_model=_NoFit(), pool=["pol0", "gpt-9"])
    for bad in ("pol0,pol1", [], [1, 2]):
        with pytest.raises(ValueError, match="pool must be a non-empty list of model names"):
            route_eval(train, test, value_model=_NoFit(), pool=bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error", V0liteWarning)  # tiny left out: no test prompt is dropped, no warning
        res = route_eval(
            train, test, value_model=make_model(head="prior"), pool=["pol0", "pol1", "pol2"], baselines=False
        )
    assert res["policies"] == ["pol0", "pol1", "pol2"] and res["n_test"] == 20 and res["n_test_incomplete"] == 0
    with pytest.raises(
        ParameterError, match=r"^new_model 'pol2' is not in pool \['pol0', 'pol1'\]\. Fix: add it to pool\.$"
    ):
        route_eval(train, test, value_model=_NoFit(), pool=["pol0", "pol1"], new_model="pol2", new_n=5)


def test_a_few_dropped_test_prompts_are_a_warning_naming_each_models_coverage(make_model):
    from v0lite.routing import route_eval

    train, test = _logs(n_prompts=80)
    gone = (pl.col("policy") == "pol1") & pl.col("prompt").is_in(test["prompt"].unique().sort()[:3].to_list())
    pool = ["pol0", "pol1", "pol2"]
    with pytest.warns(V0liteWarning, match=r"3 test prompts of 40 lack .*fewest first: 'pol1' 37 of 40\)") as rec:
        res = route_eval(train, test.filter(~gone), value_model=make_model(head="prior"), pool=pool, baselines=False)
    assert res["n_test"] == 37 and res["n_test_incomplete"] == 3
    assert not any("'pol0'" in str(w.message) for w in rec)  # complete models are not listed
    few = (pl.col("policy") == "pol1") & pl.col("prompt").is_in(test["prompt"].unique().sort()[:21].to_list())
    with pytest.raises(DataError, match=r"only 19 of 40 .*at least half of them and at least 20 .*'pol1' 19 of 40"):
        route_eval(train, test.filter(~few), value_model=_NoFit(), pool=pool)  # under half: refused


def test_route_eval_cli_pool_and_the_refusal_in_flag_terms(tmp_path, capsys, fake_minilm):
    from v0lite.cli import main
    from v0lite.log import write_log

    train, test = _logs()
    tr, te = write_log(train, tmp_path / "train.jsonl"), write_log(test, tmp_path / "test.jsonl")
    base = ["route-eval", str(tr), str(te), "--head", "prior", "--no-baselines", "--quiet"]
    saved = tmp_path / "router"
    assert main([*base, "--save-router", str(saved)]) == 1
    err = capsys.readouterr().err
    assert f"TEST {te}: only 1 of 20 test prompts" in err and "'tiny' 1 of 20" in err, err
    assert "Fix: leave 'tiny' out with --pool pol0,pol1,pol2;" in err and "--new-model tiny --n N" in err
    assert "pool=" not in err and "new_model" not in err and not saved.exists()  # refused: no router saved
    assert main([*base, "--pool", "pol0,gpt-9"]) == 1
    err = capsys.readouterr().err
    assert "--pool names ['gpt-9'], not models of both logs" in err and "Fix: name in --pool only" in err
    assert main([*base, "--pool", "pol0,pol1", "--new-model", "pol2", "--n", "5"]) == 1
    assert "--new-model pol2 is not in --pool pol0,pol1. Fix: add it to --pool." in capsys.readouterr().err
    assert main([*base, "--pool", "pol0, pol1,pol2", "--save-router", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "n_policies                  3" in out and "n_test_incomplete           0" in out
    assert main(["route-eval", "--help"]) == 0 and "--pool A,B,C" in capsys.readouterr().out


def test_a_missing_task_key_says_why_when_both_logs_name_tasks():
    from v0lite.commands._route_report import why_missing

    no_task = "the logs name no task"
    assert why_missing("within_task_auc", {"n_train_complete": 5}, has_task=False).startswith(no_task)
    assert why_missing("within_task_auc", {"n_train_complete": 5}).startswith(no_task)  # nothing says tasks
    tasks = {"n_train_complete": 5, "n_test": 1, "baseline_task_max_acc": 1.0}  # the probe's: tasks, 1 prompt
    for has in (True, None):  # said by the CLI, or read from the task baseline's result
        why = why_missing("within_task_auc", tasks, has_task=has)
        assert no_task not in why and "both a success and a failure" in why and "(1 test prompts)" in why
    why = why_missing("within_task_auc", {"n_train_complete": 0}, has_task=True)
    assert "no train prompt has an outcome for every pool model" in why


def test_a_prompt_blind_value_model_is_not_called_no_better_than_chance(make_model):
    """Issue: route-eval set its router's ``chance`` without ``ranks_within``, so a prior (one value per model)
    read "no better than chance" in the JSON while evaluate and the baselines call it 0.5 by construction."""
    from v0lite.routing import route_eval

    train, test = _logs()
    pool = ["pol0", "pol1", "pol2"]
    blind = route_eval(train, test, value_model=make_model(head="prior"), pool=pool, baselines=False)
    assert blind["within_policy_auc"] == 0.5 and not blind["ranks_within"] and blind["chance"] is False
    knn = route_eval(train, test, value_model=make_model(head="knn"), pool=pool, baselines=False)
    assert knn["ranks_within"]  # a head that ranks is judged by its AUC


def test_route_eval_warns_of_prices_naming_no_model_but_not_of_the_logs_other_models(
    tmp_path, capsys, make_model, fake_minilm
):
    """Probe FR 2: a misspelt or unknown name in prices was ignored silently. The Router's one check names it
    (with the name meant); a model of the logs left out by pool, or the new model joining later, is no typo."""
    from v0lite.cli import main
    from v0lite.log import write_log
    from v0lite.routing import route_eval

    train, test = _logs()
    prices = {**_PRICE, "tiny": 1e-5, "Pol1": 0.5, "brand-new-llm": 0.2}
    with pytest.warns(V0liteWarning, match=r"name 2 policies in neither the pool") as rec:
        route_eval(train, test, value_model=make_model(head="prior"), pool=["pol0", "pol1", "pol2"], prices=prices,
                   new_model="pol2", new_n=5, baselines=False, save_router=tmp_path / "r")  # fmt: skip
    said = [str(w.message) for w in rec if "price nothing" in str(w.message)]
    assert len(said) == 1 and "['Pol1', 'brand-new-llm'] ('Pol1': did you mean 'pol1'?)" in said[0]
    assert "tiny" not in said[0] and "'pol2'" not in said[0]
    from v0lite.routing import Router

    # every price is kept in the saved router: a model pool= left out (tiny) may still join through add_history
    assert Router.load(tmp_path / "r").get_params()["prices"]["tiny"] == 1e-5
    tr, te = write_log(train, tmp_path / "train.jsonl"), write_log(test, tmp_path / "test.jsonl")
    argv = ["route-eval", str(tr), str(te), "--head", "prior", "--no-baselines", "-q", "--pool", "pol0,pol1,pol2"]
    assert main([*argv, "--prices", json.dumps(prices)]) == 0
    err = capsys.readouterr().err
    assert "v0lite route-eval: warning: the prices name 2 policies in neither the pool" in err
    assert "'Pol1': did you mean 'pol1'?" in err and "add_history" not in err  # no Python-only advice


def test_route_eval_cli_refuses_a_model_priced_twice(tmp_path, capsys):
    """Probe FR 3: json.loads kept the last of two prices of one model silently."""
    from v0lite.cli import main
    from v0lite.log import write_log

    train, test = _logs()
    tr, te = write_log(train, tmp_path / "train.jsonl"), write_log(test, tmp_path / "test.jsonl")
    prices = tmp_path / "prices.json"
    prices.write_text('{"pol0": 0.001, "pol1": 0.01, "pol2": 0.1, "pol0": 0.5}')
    assert main(["route-eval", str(tr), str(te), "--prices", str(prices), "--json", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert f"--prices {prices}: model 'pol0' is priced twice (JSON keeps only the last, 0.5)" in err
    assert "Fix: give each model one price in --prices" in err and not (tmp_path / "r.json").exists()
