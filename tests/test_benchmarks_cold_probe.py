"""benchmarks/cold_probe.py: --quick never writes; the written command names only the env vars that were set."""

from benchmarks._results import command_with_env
from benchmarks.cold_probe import LABELS, describe, parse_args


def test_quick_implies_no_write():
    assert parse_args(["--quick"]).no_write
    assert not parse_args([]).no_write


def test_command_names_only_the_env_vars_that_were_set():
    names = ("OMP_NUM_THREADS", "V0LITE_DATA")
    assert command_with_env("cold_probe.py", [], names, environ={}) == "python benchmarks/cold_probe.py"
    cmd = command_with_env("cold_probe.py", ["--no-write"], names, environ={"OMP_NUM_THREADS": "1", "X": "2"})
    assert cmd == "OMP_NUM_THREADS=1 python benchmarks/cold_probe.py --no-write"
    cmd = command_with_env("cold_probe.py", [], names, environ={"V0LITE_DATA": "/a b", "OMP_NUM_THREADS": ""})
    assert cmd == "V0LITE_DATA='/a b' python benchmarks/cold_probe.py"


def test_reading_of_a_one_seed_run_claims_no_seed_spread():
    scores = {name: [0.55] for name in LABELS}
    scores.update(random=[0.5], oracle=[0.8], causal=[0.5], stack=[0.6])
    text = describe(scores, 0.2, 0.5, "0.47", "0.78", 0.56)
    assert "one fold seed only, so no seed spread to judge this gap by" in text
    assert "by more than the seed spread" not in text
    scores = {k: v * 3 for k, v in scores.items()}  # three equal seeds: the spread is judged
    assert "lower by more than the seed spread" in describe(scores, 0.2, 0.5, "0.47", "0.78", 0.56)
