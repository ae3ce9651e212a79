"""benchmarks/serve.py: --quick caps every phase and never writes RESULTS.md."""

import pytest

from benchmarks.serve import parse_args


def test_quick_caps_the_phases_and_implies_no_write():
    args = parse_args(["--quick"])
    assert args.no_write
    assert (args.seconds, args.requests, args.chat_requests) == (3.0, 500, 50)
    assert args.encoder_prompts > args.max_batch
    assert parse_args(["--quick", "--seconds", "5"]).seconds == 5.0
    full = parse_args([])
    assert not full.no_write and full.requests == 4000


def test_quick_still_checks_encoder_prompts(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--max-batch", "512"])
    assert "--encoder-prompts 256 must exceed --max-batch 512" in capsys.readouterr().err
