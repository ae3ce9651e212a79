"""``v0lite route``: routing a saved model from the command line, prompts and prices checked before
anything is written, never a price dropped silently."""

from __future__ import annotations

import argparse
import json

import polars as pl
import pytest

from tests.test_router import FakeValueModel, _p_of

# ------------------------------------------------------------------ CLI


def test_route_cli(tmp_path, monkeypatch):
    from v0lite.commands import route as cmd

    monkeypatch.setattr(cmd, "_load_value_model", lambda d, *args: FakeValueModel())
    (tmp_path / "meta.json").write_text("{}")  # the CLI checks --model-dir holds a model before loading it
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    prompts = tmp_path / "prompts.jsonl"
    pl.DataFrame(
        {"prompt": [f"p{i} level {i}" for i in range(10)], "prompt_id": [str(i) for i in range(10)]}
    ).write_ndjson(prompts)
    out = tmp_path / "routed.csv"
    args = parser.parse_args(
        [
            "route",
            "--model-dir",
            str(tmp_path),
            str(prompts),
            "--pool",
            "small,big",
            "--strategy",
            "threshold",
            "--knob",
            "0.6",
            "--prices",
            json.dumps({"small": 0.1, "big": 1.0}),
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    res = pl.read_csv(out)
    assert res.columns == ["prompt", "prompt_id", "policy", "p_success", "pred_cost"]
    expect = ["small" if _p_of("small", t) >= 0.6 else "big" for t in res["prompt"].to_list()]
    assert res["policy"].to_list() == expect
    assert set(res["pred_cost"].to_list()) <= {0.1, 1.0}
    args = parser.parse_args(
        [
            "route",
            "--model-dir",
            str(tmp_path),
            str(prompts),
            "--pool",
            "small,big",
            "--strategy",
            "utility",
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    assert set(pl.read_csv(out)["policy"].to_list()) == {"big"}


# ------------------------------------------------------------------ probe: route input, prices, params


def _route_files(tmp_path):
    """A fitted prior model (the CLI's fake encoder), a cost log of pol0 and pol1 only, and prompts."""
    from conftest import make_log

    from v0lite.cli import main
    from v0lite.log import write_log

    log = make_log(3, 12)
    hist = write_log(log, tmp_path / "hist.jsonl")
    assert main(["fit", str(hist), "--model-dir", str(tmp_path / "m"), "--head", "prior", "-q"]) == 0
    costs = log.filter(pl.col("policy") != "pol2").with_columns(
        pl.col("policy").replace_strict({"pol0": 0.001, "pol1": 0.01}, return_dtype=pl.Float64).alias("cost")
    )
    cost_log = write_log(costs, tmp_path / "costs.jsonl")
    prompts = tmp_path / "prompts.csv"
    pl.DataFrame({"prompt": ["add the numbers 7", "sort the list 9"]}).write_csv(prompts)
    return tmp_path / "m", cost_log, prompts


def test_route_cli_prompts_with_a_header_only_stop_before_writing(tmp_path, capsys, fake_minilm, guarantees):
    """Probe 1: a header-only PROMPTS ended in a TypeError traceback after --out was written."""
    from v0lite.cli import main

    model, _, _ = _route_files(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("prompt\n")
    out = tmp_path / "c.csv"
    argv = ["route", str(empty), "--model-dir", str(model), "--pool", "pol0,pol1", "--out", str(out), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"PROMPTS {empty}: has no rows" in err and "Fix:" in err and "Traceback" not in err
    assert not out.exists()
    guarantees.tick("bad-input cases tried")


def test_route_cli_prices_with_cost_log_never_drop_a_price_silently(tmp_path, capsys, fake_minilm, guarantees):
    """Probe 2: --prices beside --cost-log was ignored for the logged models; a model missing from the cost
    log got a Python fix (prices={...}) instead of the flag."""
    from v0lite.cli import main

    model, cost_log, prompts = _route_files(tmp_path)
    out = tmp_path / "c.csv"
    base = ["route", str(prompts), "--model-dir", str(model), "--cost-log", str(cost_log), "--out", str(out), "-q"]
    all3 = json.dumps({"pol0": 0.5, "pol1": 0.6, "pol2": 0.7})
    assert main([*base, "--prices", all3]) == 1  # the pool is the priced models, two of them in the cost log
    err = capsys.readouterr().err
    assert "--prices gives a price for ['pol0', 'pol1']" in err and "pass one of --prices / --cost-log" in err
    assert main([*base, "--pool", "pol0,pol1,pol2"]) == 1
    err = capsys.readouterr().err
    assert "has no cost for the pool models ['pol2']" in err and "--prices '{\"pol2\": 0.001}'" in err
    assert "prices={" not in err
    assert not out.exists()
    assert main([*base, "--pool", "pol0,pol1,pol2", "--prices", '{"pol2": 0.7}']) == 0  # the documented use
    routed = pl.read_csv(out)  # each model at its cost: pol0, pol1 learned from the log, pol2 at its --prices
    price = {"pol0": 0.001, "pol1": 0.01, "pol2": 0.7}
    assert routed["pred_cost"].to_list() == pytest.approx([price[p] for p in routed["policy"].to_list()])
    assert main(["route", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "with --cost-log, only the pool models it has no cost for" in help_text
    guarantees.tick("bad-input cases tried", 2)


def test_route_cli_prices_inline_json_not_an_object(tmp_path, capsys, fake_minilm):
    """Probe 7b: --prices [1,2] said 'does not exist'."""
    from v0lite.cli import main

    model, _, prompts = _route_files(tmp_path)
    argv = ["route", str(prompts), "--model-dir", str(model), "--out", str(tmp_path / "c.csv"), "--prices", "[1,2]"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "inline JSON must be an object" in err and "got a list" in err and "does not exist" not in err


def _saved_router_with_c_held(tmp_path):
    """A saved router over a, b whose value model also holds c (added with join=False), the prompts, and
    prices that make c the cheapest."""
    from tests.serve_util import tiny_router
    from tests.test_encoder_paths import encoder_folder

    r = tiny_router(encoder=str(encoder_folder(tmp_path / "enc")), policies=("a", "b"))
    r.add_history(pl.DataFrame({"policy": ["c"] * 4, "prompt": [f"add the numbers case {i}" for i in range(4)],
                                "score": [1.0] * 4}), join=False)  # fmt: skip
    r.save(tmp_path / "r")
    prompts = tmp_path / "p.csv"
    pl.DataFrame({"prompt": ["add the numbers case 1", "sort the list 2", "prove it 3"]}).write_csv(prompts)
    return tmp_path / "r", prompts, {"a": 0.01, "b": 0.02, "c": 0.0001}


def test_route_cli_prices_on_a_saved_router_route_as_set_prices_does(tmp_path, capsys, fake_minilm):
    """Probe FR 1: `route --router --prices` repriced the saved pool only, dropping a priced model the value
    model holds, while Router.set_prices(prices) joins it: the two routed differently. One call now, one answer."""
    from v0lite.cli import main
    from v0lite.routing import Router

    d, prompts, prices = _saved_router_with_c_held(tmp_path)
    out = tmp_path / "o.csv"
    argv = ["route", str(prompts), "--router", str(d), "--prices", json.dumps(prices), "--knob", "100", "--out"]
    assert main([*argv, str(out)]) == 0
    assert "note: --prices prices ['c'], which the value model of --router" in capsys.readouterr().err
    api = Router.load(d).set_prices(prices)
    assert api.policies_ == ["a", "b", "c"]
    want = api.route(pl.read_csv(prompts)["prompt"].to_list(), lam=100.0).tolist()
    assert pl.read_csv(out)["policy"].to_list() == want and "c" in want


def test_route_cli_default_pool_is_routers_priced_models_with_history(tmp_path, capsys, fake_minilm, guarantees):
    """Probe AE: --prices pricing a model with no history stopped the CLI with a fix naming --pool (never passed),
    while Router(prices=...) routed between the priced models with history. One default pool now, the others
    named in a note; an explicit --pool naming such a model still stops."""
    from v0lite.cli import main
    from v0lite.estimator import V0Regressor
    from v0lite.exceptions import V0liteWarning
    from v0lite.routing import Router

    model, _, prompts = _route_files(tmp_path)  # the model knows pol0, pol1, pol2
    out = tmp_path / "c.csv"
    prices = {"pol0": 0.001, "pol1": 0.01, "ghost": 0.5}
    base = ["route", str(prompts), "--model-dir", str(model), "--out", str(out), "--knob", "20", "-q"]
    assert main([*base, "--prices", json.dumps(prices)]) == 0
    err = capsys.readouterr().err
    # the priced name without history: the Router's one warning (FR 2), not a second note of the CLI's
    said = "warning: the prices name 1 policy in neither the pool nor the value model's history, which price nothing"
    assert f"{said}: ['ghost']" in err and err.count("'ghost'") == 1
    # Router's warning about pol2 (history, no price) was silenced: the CLI says it, with the flag's fix
    assert f"note: the value model of --model-dir {model} has history for ['pol2'], which --prices does not" in err
    assert "add them to --prices to route to them" in err and "prices={" not in err
    with pytest.warns(V0liteWarning) as caught:
        api = Router(V0Regressor.load(model), cost_model="fixed", prices=prices).fit()
    said = [str(w.message) for w in caught]
    assert any("['pol2'] have history in the value model but no price" in m for m in said)
    assert any("which price nothing: ['ghost']" in m for m in said)  # the CLI's warning above, in Python
    assert api.policies_ == ["pol0", "pol1"]
    texts = pl.read_csv(prompts)["prompt"].to_list()
    assert pl.read_csv(out)["policy"].to_list() == api.route(texts, lam=20).tolist()
    out.unlink()
    assert main([*base, "--prices", json.dumps(prices), "--pool", "pol0,ghost"]) == 1  # named: still an error
    assert "['ghost'] have no history" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--prices", '{"ghost": 0.5, "typo": 1}']) == 1  # none with history: in flag terms
    err = capsys.readouterr().err
    assert "--prices (inline JSON): none of its 2 models has history in the value model of --model-dir" in err
    assert "pass --fallback global_mean" in err and "policies=" not in err
    assert not out.exists()
    guarantees.tick("bad-input cases tried", 4)


def test_route_cli_fallback_global_mean_keeps_every_priced_model_in_the_default_pool(tmp_path, capsys, fake_minilm):
    """With --fallback global_mean a priced model without history was in the pool (the fallback answers it)
    until the default pool became the priced models with history: it is again, and no note says it left."""
    from v0lite.cli import main

    model, _, prompts = _route_files(tmp_path)  # the model knows pol0, pol1, pol2
    out = tmp_path / "c.csv"
    prices = json.dumps({"pol0": 1.0, "pol1": 2.0, "ghost": 1e-5})  # ghost is so cheap that --knob 20 picks it
    argv = ["route", str(prompts), "--model-dir", str(model), "--out", str(out), "--knob", "20", "--prices", prices]
    assert main([*argv, "--fallback", "global_mean", "-q"]) == 0
    assert set(pl.read_csv(out)["policy"].to_list()) == {"ghost"}
    assert "left out of the pool (routing between" not in capsys.readouterr().err
    assert main([*argv, "-q", "--force"]) == 0  # without it: the models with history only
    assert set(pl.read_csv(out)["policy"].to_list()) <= {"pol0", "pol1"}


def test_route_cli_bad_cost_log_with_a_pool_stops_before_loading_the_model(tmp_path, capsys, fake_minilm, monkeypatch):
    """With --pool the value model is not needed to find the pool: a --cost-log without costs for the pool
    stops before the (slow) model load, as it did before the default pool loaded the model first."""
    from v0lite.cli import main
    from v0lite.commands import route as cmd

    model, cost_log, prompts = _route_files(tmp_path)
    loads, real = [], cmd._load_value_model
    monkeypatch.setattr(cmd, "_load_value_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    argv = ["route", str(prompts), "--model-dir", str(model), "--cost-log", str(cost_log), "--out",
            str(tmp_path / "c.csv"), "--pool", "pol0,pol1,pol2", "-q"]  # fmt: skip
    assert main(argv) == 1
    assert "has no cost for the pool models ['pol2']" in capsys.readouterr().err
    assert loads == []
    assert main([*argv[:-3], "--pool", "pol0,pol1", "-q"]) == 0 and len(loads) == 1  # a good one loads it once


def test_route_cli_knob_nan_and_empty_prompts_speak_in_route_flags(tmp_path, capsys, fake_minilm, guarantees):
    """Probe AE: `--knob nan` was told to 'pass a number' (no flag); an empty PROMPTS file was told to hold an
    outcome log (policy, prompt, score), but route needs only a 'prompt' column. `--knob 1e400` said "inf":
    the parser refuses a knob that is not finite as typed, as `v0lite serve --knob` does."""
    from v0lite.cli import main

    model, _, prompts = _route_files(tmp_path)
    out = tmp_path / "c.csv"
    base = ["--model-dir", str(model), "--pool", "pol0,pol1", "--out", str(out), "-q"]
    for typed, said in (
        ("nan", "nan is not a finite number; pass a finite number"),
        ("1e400", "1e400 is not a finite number (it reads as inf); pass a finite number"),
        ("-1e999", "-1e999 is not a finite number (it reads as -inf)"),
    ):
        assert main(["route", str(prompts), *base, f"--knob={typed}"]) == 2  # by the parser, before any work
        err = capsys.readouterr().err
        assert f"argument --knob: {said}" in err and "lam=" not in err and "knob inf" not in err, err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["route", str(empty), *base]) == 1
    err = capsys.readouterr().err
    assert "the file is empty" in err and "a 'prompt' column" in err and "outcome log" not in err
    assert not out.exists()
    guarantees.tick("bad-input cases tried", 4)


_KNOBS = {"utility": 100.0, "threshold": 0.5, "budget": 0.008, "quality-target": 0.6}


@pytest.mark.parametrize("strategy", sorted(_KNOBS))
def test_route_cli_strategy_on_a_saved_router_routes_as_set_strategy(tmp_path, capsys, fake_minilm, strategy):
    """Probe FR 4: the CLI changed a loaded router's strategy through the private strategy_, Python could not
    without the log. Both use set_strategy now: the same choices for each strategy and knob."""
    import warnings

    from v0lite.cli import main
    from v0lite.routing import Router

    d, prompts, _ = _saved_router_with_c_held(tmp_path)
    out = tmp_path / "o.csv"
    argv = ["route", str(prompts), "--router", str(d), "--strategy", strategy, "--knob", str(_KNOBS[strategy])]
    assert main([*argv, "--out", str(out), "-q"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a strategy's fallback warning: the CLI printed the same one
        want = (
            Router.load(d).set_strategy(strategy).route(pl.read_csv(prompts)["prompt"].to_list(), knob=_KNOBS[strategy])
        )
    assert pl.read_csv(out)["policy"].to_list() == want.tolist()


def test_route_cli_prices_naming_no_model_are_warned_with_the_name_meant(tmp_path, capsys, fake_minilm):
    """Probe FR 2: `route --router --prices` ignored a misspelt, a case-variant and an unknown name silently."""
    from v0lite.cli import main

    d, prompts, prices = _saved_router_with_c_held(tmp_path)
    prices = {"a": 0.01, "b": 0.02, "A": 0.5, "brand-new-llm": 0.2}
    argv = ["route", str(prompts), "--router", str(d), "--prices", json.dumps(prices), "--out", str(tmp_path / "o.csv")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "v0lite route: warning: the prices name 2 policies in neither the pool nor the value model's history" in err
    assert "['A', 'brand-new-llm'] ('A': did you mean 'a'?)" in err
    assert "Fix: correct a misspelt name in --prices (a priced model without history is not routed to)" in err


def test_route_cli_refuses_a_model_priced_twice_and_names_a_blank_prompts_file_row(tmp_path, capsys, monkeypatch):
    """Probe FR 3 and 5: a model priced twice kept its last price silently; a blank prompt was named as
    'prompt 1' without the file or the column. Both stop before any model is loaded or --out written."""
    from v0lite.cli import main
    from v0lite.commands import route as cmd

    monkeypatch.setattr(cmd, "_load_value_model", lambda *a, **k: pytest.fail("loaded before the checks"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "meta.json").write_text("{}")
    prompts, out = tmp_path / "p.csv", tmp_path / "o.csv"
    pl.DataFrame({"prompt": ["add the numbers 7", "   ", "sort 9"]}).write_csv(prompts)
    base = ["route", str(prompts), "--model-dir", str(tmp_path / "m"), "--out", str(out)]
    assert main([*base, "--prices", '{"pol0": 0.001, "pol1": 0.01, "pol0": 0.5}']) == 1
    err = capsys.readouterr().err
    assert "--prices (inline JSON): model 'pol0' is priced twice (JSON keeps only the last, 0.5)" in err
    assert main([*base, "--prices", '{"pol0": 0.001, "pol1": 0.01}']) == 1
    err = capsys.readouterr().err
    assert f"v0lite route: error: PROMPTS {prompts}: column 'prompt', row 1: '   ' is not a non-empty text" in err
    assert not out.exists()
