"""route-eval under budget and quality-target: the utility lam of each knob, and the line saying how to serve it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import make_log
from tests.test_evaluate import FakeEmbedder, FakeValueModel, _log
from v0lite.cli import main
from v0lite.routing import route_eval


@pytest.fixture(scope="module")
def logs():
    return _log(80, seed=1), _log(60, seed=2)


@pytest.mark.parametrize("strategy", ["budget", "quality-target"])
def test_route_eval_reports_the_equivalent_lam(logs, strategy):
    train, test = logs
    r = route_eval(
        train,
        test,
        value_model=FakeValueModel(),
        embedder=FakeEmbedder(),
        strategy=strategy,
        n_knobs=8,
        baselines=False,
        tuned_ks=None,
    )
    curve = r["curves"]["router"]
    assert len(curve["lam"]) == len(curve["knob"]) == len(curve["cost"])
    lams = np.array(curve["lam"])
    assert np.isfinite(lams).all() and (lams >= 0).all()
    # a larger budget buys quality: lam falls; a larger target needs quality: lam falls too
    assert (np.diff(lams) <= 1e-9).all() and lams[0] > lams[-1]
    json.dumps(r, allow_nan=False)  # the lams are plain finite JSON numbers


def test_route_eval_utility_has_no_lam(logs):
    train, test = logs
    r = route_eval(
        train, test, value_model=FakeValueModel(), embedder=FakeEmbedder(), n_knobs=8, baselines=False, tuned_ks=None
    )
    assert "lam" not in r["curves"]["router"]


def test_cli_names_the_per_request_knob(tmp_path, capsys, fake_minilm):
    hist, queries = tmp_path / "h.jsonl", tmp_path / "q.jsonl"
    make_log(3, 40, seed=0).write_ndjson(hist)
    make_log(3, 20, seed=1).write_ndjson(queries)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"pol0": 0.001, "pol1": 0.002, "pol2": 0.01}))
    out = tmp_path / "r.json"
    args = [
        "route-eval",
        str(hist),
        str(queries),
        "--head",
        "knn",
        "--no-baselines",
        "--prices",
        str(prices),
        "--json",
        str(out),
        "--quiet",
    ]
    assert main(args + ["--strategy", "budget"]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if "one request at a time" in ln)
    assert "to serve this operating point one request at a time, use --strategy utility --knob <lam>" in line
    assert "computed on these TEST prompts" in line and "curves.router.lam" in line
    lams = json.loads(out.read_text())["curves"]["router"]["lam"]
    assert f"--knob {lams[len(lams) // 2]:.6g}" in line
    assert main(args + ["--strategy", "utility", "--force"]) == 0
    assert "one request at a time" not in capsys.readouterr().out
