"""benchmarks/encoders.py: --quick is small and never writes; package versions come from the metadata."""

from benchmarks.encoders import _package, parse_args


def test_quick_is_small_and_implies_no_write():
    args = parse_args(["--quick"])
    assert args.no_write
    assert (args.encoders, args.heads, args.routerdc_prompts) == ("minilm", "knn", 300)
    assert parse_args(["--quick", "--routerdc-prompts", "50"]).routerdc_prompts == 50  # a given flag wins
    full = parse_args([])
    assert not full.no_write and full.encoders == "minilm,mpnet,e5q4" and full.routerdc_prompts == 1200


def test_package_version_read_from_metadata():
    from importlib.metadata import version

    assert _package("numpy") == f"numpy {version('numpy')}"
    assert _package("no-such-dist-v0lite") == "no-such-dist-v0lite (version unknown)"
