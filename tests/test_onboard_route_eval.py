"""A new model in route-eval and route: ``route-eval --new-model`` and its flags and errors, a saved
router with an added model routed with prices; and ``save_router`` written last (a failed run leaves none)."""

import json
import warnings

import polars as pl
import pytest
from conftest import make_log

from v0lite.exceptions import DataError, V0liteWarning


# -- route-eval --new-model --------------------------------------------------------------------
def _priced(n_prompts=60, seed=1):
    log = make_log(4, n_prompts, seed=seed)
    price = {"pol0": 0.0001, "pol1": 0.001, "pol2": 0.003, "pol3": 0.01}
    return log.with_columns(pl.col("policy").replace_strict(price, return_dtype=pl.Float64).alias("cost"))


def test_route_eval_new_model(make_model):
    from v0lite.routing import route_eval

    log = _priced()
    test_mask = pl.col("prompt").str.contains("case 1")
    train, test = log.filter(~test_mask), log.filter(test_mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        res = route_eval(
            train, test, value_model=make_model(head="logistic"), new_model="pol2", new_n=10, baselines=False
        )
    assert res["new_model"] == "pol2" and res["new_model_n"] == 10 and res["n_policies"] == 4
    assert res["new_model_auc"] is None or 0.0 <= res["new_model_auc"] <= 1.0
    json.dumps(res, allow_nan=False)
    # the pool without it as a choice is, here, the same evaluation on the logs without it (the logistic
    # head's other columns do not move when pol2's rows are added; pol2 is not the dearest, so the cost
    # scale is the same too)
    without = pl.col("policy") != "pol2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        alone = route_eval(
            train.filter(without), test.filter(without), value_model=make_model(head="logistic"), baselines=False
        )
    assert res["without_new_model_max_acc"] == pytest.approx(alone["max_acc"], abs=1e-9)
    assert res["without_new_model_aiq"] == pytest.approx(alone["aiq"], abs=1e-9)
    g = res["new_model_join_gain"]  # with it minus before it joined, on the priced pool's headline
    assert g["metric"] == "aiq" and g["estimate"] == pytest.approx(res["aiq"] - alone["aiq"], abs=1e-9)
    assert g["ci_low"] <= g["estimate"] <= g["ci_high"]
    # one model before it joined: no frontier, so no AIQ before and the gain is on max accuracy
    two = pl.col("policy").is_in(["pol0", "pol2"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        pair = route_eval(
            train.filter(two),
            test.filter(two),
            value_model=make_model(head="logistic"),
            new_model="pol2",
            new_n=10,
            baselines=False,
        )
    assert pair["without_new_model_aiq"] is None and pair["new_model_join_gain"]["metric"] == "max_acc"
    with pytest.raises(DataError, match="not a model"):
        route_eval(train, test, value_model=make_model(head="logistic"), new_model="nope", new_n=3, baselines=False)
    with pytest.raises(DataError, match="new_n"):
        route_eval(train, test, value_model=make_model(head="logistic"), new_model="pol2", new_n=0, baselines=False)


def test_route_eval_cli_new_model_flags(tmp_path, capsys, fake_minilm):
    from v0lite.cli import main
    from v0lite.log import write_log

    log = _priced().with_columns(task=pl.format("t{}", pl.col("prompt").str.len_chars() % 2))
    test_mask = pl.col("prompt").str.contains("case 1")
    tr = write_log(log.filter(~test_mask), tmp_path / "train.jsonl")
    te = write_log(log.filter(test_mask), tmp_path / "test.jsonl")
    base = ["route-eval", str(tr), str(te), "--head", "logistic", "--no-baselines", "--quiet"]
    assert main([*base, "--new-model", "pol1"]) == 1
    assert "--new-model and --n go together" in capsys.readouterr().err
    assert main([*base, "--new-model", "pol1", "--n", "12", "--per-task"]) == 0
    out = capsys.readouterr().out
    assert "new model 'pol1'" in out
    before = next(line for line in out.splitlines() if line.startswith("the pool without 'pol1' as a choice"))
    assert "aiq " in before and "max_acc " in before and "mean_task_acc " in before
    assert main([*base, "--new-model", "pol1", "--n", "12", "--per-task", "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    advice = "join=False" in capsys.readouterr().out
    g = res["new_model_join_gain"]
    assert g["metric"] == "mean_task_acc"
    assert g["estimate"] == pytest.approx(res["mean_task_acc"] - res["without_new_model_mean_task_acc"], abs=1e-12)
    assert g["ci_low"] <= g["estimate"] <= g["ci_high"]
    assert advice == (g["ci_high"] < 0)


def test_route_eval_cli_new_model_errors_name_the_flag_and_the_file(tmp_path, capsys, fake_minilm):
    from v0lite.cli import main
    from v0lite.log import write_log

    log = _priced()
    test_mask = pl.col("prompt").str.contains("case 1")
    tr = write_log(log.filter(~test_mask), tmp_path / "train.jsonl")
    te = write_log(log.filter(test_mask), tmp_path / "test.jsonl")
    te3 = write_log(log.filter(test_mask & (pl.col("policy") != "pol3")), tmp_path / "test3.jsonl")
    base = ["route-eval", str(tr), str(te), "--head", "logistic", "--no-baselines", "--quiet"]
    assert main([*base, "--new-model", "gpt-9", "--n", "5"]) == 1
    err = capsys.readouterr().err
    assert f"--new-model gpt-9: has no outcomes in TRAIN {tr} nor in TEST {te}" in err and "new_model '" not in err
    assert "Fix: pass --new-model naming one of the pool's models" in err
    assert main(["route-eval", str(tr), str(te3), "--new-model", "pol3", "--n", "5", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"--new-model pol3: has no outcomes in TEST {te3};" in err and "TRAIN" not in err.split("Fix:")[0]
    assert main([*base, "--new-model", "x", "--n", "0"]) == 2  # at parse time
    assert "argument --n: 0 is below 1" in capsys.readouterr().err
    n_rows = log.filter(~test_mask & (pl.col("policy") == "pol1")).height
    assert main([*base, "--new-model", "pol1", "--n", "100000"]) == 0
    cap = capsys.readouterr()
    assert f"warning: --n 100000 is more than the {n_rows} TRAIN outcomes of --new-model pol1" in cap.err
    assert "new_n" not in cap.err and f"{n_rows} of its train outcomes added" in cap.out


def test_route_with_prices_routes_a_saved_router_with_an_added_model(tmp_path, capsys, fake_minilm):
    """Issue: `route --router DIR --prices FILE` refitted the cost model over the whole pool, added model
    included, while predict_matrix appended the added model's column again: P and C of different shapes.
    Now the --prices entry of the added model replaces the price it joined at."""
    from v0lite.cli import main
    from v0lite.log import write_log

    log = _priced()
    test_mask = pl.col("prompt").str.contains("case 1")
    tr = write_log(log.filter(~test_mask), tmp_path / "train.jsonl")
    te = write_log(log.filter(test_mask), tmp_path / "test.jsonl")
    r = tmp_path / "router"
    argv = ["route-eval", str(tr), str(te), "--head", "knn", "--no-baselines", "--quiet", "--save-router", str(r)]
    assert main([*argv, "--new-model", "pol2", "--n", "10"]) == 0
    assert json.loads((r / "meta.json").read_text())["added_prices"] == [["pol2", pytest.approx(0.003)]]
    assert main(["data", "prompts", str(te), str(tmp_path / "prompts.jsonl")]) == 0
    prices = {"pol0": 0.5, "pol1": 0.4, "pol2": 0.0001, "pol3": 0.3}
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    routed = tmp_path / "routed.jsonl"
    route = ["route", str(tmp_path / "prompts.jsonl"), "--router", str(r), "--out", str(routed), "--quiet", "--force"]
    assert main([*route, "--prices", str(tmp_path / "prices.json"), "--strategy", "threshold", "--knob", "0"]) == 0
    got = pl.read_ndjson(routed)
    assert set(got["policy"].to_list()) == {"pol2"} and set(got["pred_cost"].to_list()) == {0.0001}
    prices.pop("pol2")
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    capsys.readouterr()
    assert main([*route, "--prices", str(tmp_path / "prices.json")]) == 1
    err = capsys.readouterr().err
    assert f"--prices {tmp_path / 'prices.json'} has no price for 1 of the 4 pool models: ['pol2']" in err


# -- save_router: written last, so a failed run leaves no router ---------------------------------------
def _split_priced():
    log = _priced(n_prompts=24)
    test_mask = pl.col("prompt").str.contains("case 1")
    return log.filter(~test_mask), log.filter(test_mask)


def _files(folder):
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("step", ["predict", "plot"])
def test_route_eval_that_fails_after_the_fit_leaves_no_router(monkeypatch, tmp_path, make_model, step):
    import v0lite.routing._evaluate as evaluate
    from v0lite.routing import Router, route_eval

    train, test = _split_priced()
    kw = {"baselines": False, "tuned_ks": None, "plot": tmp_path / "p.png"}
    earlier = tmp_path / "earlier"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        route_eval(train, test, value_model=make_model(head="logistic"), save_router=earlier, **kw)
    before = _files(earlier)
    assert "meta.json" in before and (tmp_path / "p.png").exists()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if step == "predict":  # predicting the test prompts, which came after the save
        monkeypatch.setattr(Router, "predict_matrix", fail)
    else:
        monkeypatch.setattr(evaluate, "plot_frontiers", fail)
    for target in (tmp_path / "new", earlier):
        with warnings.catch_warnings(), pytest.raises(OSError, match="No space left"):
            warnings.simplefilter("ignore", V0liteWarning)
            route_eval(train, test, value_model=make_model(head="logistic"), save_router=target, **kw)
    assert not (tmp_path / "new").exists()
    assert _files(earlier) == before  # the router saved there before, byte for byte
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half-written folder beside


def test_route_eval_cli_whose_plot_fails_leaves_no_router(monkeypatch, tmp_path, capsys, fake_minilm):
    import v0lite.routing._evaluate as evaluate
    from v0lite.cli import main
    from v0lite.log import write_log

    train, test = _split_priced()
    tr, te = write_log(train, tmp_path / "train.jsonl"), write_log(test, tmp_path / "test.jsonl")

    def fail(result, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(evaluate, "plot_frontiers", fail)
    r = tmp_path / "router"
    argv = ["route-eval", str(tr), str(te), "--head", "knn", "--no-baselines", "--quiet", "--save-router", str(r)]
    assert main([*argv, "--plot", str(tmp_path / "p.png")]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not r.exists()


# -- route-eval --new-model: a model never chosen; --json all or nothing with --save-router and --plot ------------
def _with_model(name: str, cost: float, score: float):
    """The priced log plus ``name`` on every prompt at ``cost``, always scoring ``score``."""
    log = _priced(n_prompts=40)
    added = log.filter(pl.col("policy") == "pol0").with_columns(
        policy=pl.lit(name), cost=pl.lit(cost), score=pl.lit(score)
    )
    both = pl.concat([log, added])
    test_mask = pl.col("prompt").str.contains("case 1")
    return both.filter(~test_mask), both.filter(test_mask)


@pytest.mark.parametrize(("name", "cost", "score"), [("bad", 0.05, 0.0), ("good", 0.00001, 1.0)])
def test_route_eval_cli_says_when_the_new_model_is_never_chosen(tmp_path, capsys, fake_minilm, name, cost, score):
    from v0lite.cli import main
    from v0lite.log import write_log

    train, test = _with_model(name, cost, score)  # 'bad': dearest and always wrong; 'good': cheapest, always right
    tr, te = write_log(train, tmp_path / "train.jsonl"), write_log(test, tmp_path / "test.jsonl")
    j = tmp_path / "r.json"
    argv = ["route-eval", str(tr), str(te), "--head", "knn", "--no-baselines", "--quiet", "--json", str(j)]
    assert main([*argv, "--new-model", name, "--n", "5"]) == 0
    out, res = capsys.readouterr().out, json.loads(j.read_text())
    never = f"the router chose {name!r} on none of the {res['n_test']} TEST prompts"
    if name == "bad":
        assert res["new_model_chosen_n"] == 0 and never in out and "joining changes nothing at --n 5" in out
        # the pool without it is read by the same value model, so the same choices score exactly the same
        g = res["new_model_join_gain"]
        assert g["estimate"] == 0.0 and g["ci_low"] == 0.0 and g["ci_high"] == 0.0
    else:
        assert res["new_model_chosen_n"] == res["n_test"] > 0 and "on none of the" not in out


def test_a_new_model_never_chosen_gains_exactly_nothing(make_model):
    """The pool without it is read by the same value model after its rows were added (join=False), so a
    model the router never chose gains exactly 0. Read before its rows were added, gbdt's other columns
    moved (it reads every policy's history) and a never-chosen model showed a gain of +0.0018."""
    from v0lite.routing import route_eval

    train, test = _with_model("bad", 0.05, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V0liteWarning)
        res = route_eval(train, test, value_model=make_model(head="gbdt"), new_model="bad", new_n=5, baselines=False)
    g = res["new_model_join_gain"]
    assert res["new_model_chosen_n"] == 0
    assert (g["estimate"], g["ci_low"], g["ci_high"]) == (0.0, 0.0, 0.0)
    assert res["without_new_model_aiq"] == res["aiq"]


def test_route_eval_cli_whose_json_fails_leaves_no_router_nor_plot(monkeypatch, tmp_path, capsys, fake_minilm):
    import v0lite._io as io
    import v0lite.commands._route_report as report
    from v0lite.cli import main
    from v0lite.log import write_log

    train, test = _split_priced()
    tr, te = write_log(train, tmp_path / "train.jsonl"), write_log(test, tmp_path / "test.jsonl")
    j, r, png = tmp_path / "r.json", tmp_path / "router", tmp_path / "p.png"
    real = io.atomic_write_bytes

    def fail_json(path, data):  # the --json write only: the router's own files are written as usual
        if str(path) == str(j):
            raise OSError(28, f"cannot write {path}: No space left on device")
        real(path, data)

    monkeypatch.setattr(io, "atomic_write_bytes", fail_json)
    monkeypatch.setattr(report, "atomic_write_bytes", fail_json, raising=False)
    argv = ["route-eval", str(tr), str(te), "--head", "knn", "--no-baselines", "--quiet", "--json", str(j)]
    assert main([*argv, "--save-router", str(r), "--plot", str(png)]) == 1
    err = capsys.readouterr().err
    assert f"--json {j}: cannot be written" in err and "No space left on device" in err
    assert f"--save-router {r}" in err and "Fix: pass --json a path in a folder that exists" in err
    assert not r.exists() and not png.exists() and not j.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a router folder there before the run is never removed (only what this run created is)
    monkeypatch.undo()
    assert main([*argv[:-2], "--save-router", str(r)]) == 0 and (r / "meta.json").exists()
    monkeypatch.setattr(report, "atomic_write_bytes", fail_json)
    assert main([*argv, "--save-router", str(r), "--force"]) == 1
    assert (r / "meta.json").exists() and f"--save-router {r} existed before the run" in capsys.readouterr().err
