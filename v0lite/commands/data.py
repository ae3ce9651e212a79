"""CLI: ``v0lite data convert FORMAT SRC OUT``."""

from __future__ import annotations

__all__ = ["register", "FORMAT_NAMES"]

# The names of v0lite.data.CONVERTERS, spelled out so `--help` and argument errors need no import of
# v0lite.data (polars); tests/test_cli.py checks that they match.
FORMAT_NAMES = ("oneshot-rlvr", "routerbench", "routerdc", "v0")
SPLIT_NAMES = ("official",)  # v0lite.data.ROUTERDC_SPLITS, spelled out for the same reason


def _convert(args) -> int:
    import sys
    import warnings

    from ..data import convert
    from ..exceptions import DataError

    kwargs = {}
    if args.split is not None:
        if args.format != "routerdc":
            raise DataError(f"--split {args.split} applies to the routerdc format only, not {args.format!r}. "
                            "Fix: drop --split.")
        kwargs["split"] = args.split
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = convert(args.format, args.src, args.out, **kwargs)
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    if args.split is not None and not any("dropped test questions" in str(w.message) for w in caught):
        print("note: no test question of the split is also in train (none dropped)", file=sys.stderr)
    if isinstance(out, dict):
        for name, path in out.items():
            print(f"wrote {name}: {path}")
    else:
        print(f"wrote {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="convert public datasets to the outcome log")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = dsub.add_parser("convert", help="convert a public format to an outcome log")
    c.add_argument("format", choices=FORMAT_NAMES, help="source format")
    c.add_argument("src", help="source file or folder")
    c.add_argument("out", help="output file (.jsonl/.csv/.parquet), or folder for routerbench (train/test) "
                              "and for routerdc --split (train/test_id/test_ood)")
    c.add_argument("--split", choices=SPLIT_NAMES, default=None,
                   help="routerdc only: 'official' writes OUT/train.jsonl (*_train files), OUT/test_id.jsonl "
                        "(*_test files) and OUT/test_ood.jsonl (MATH_prealgebra, mbpp, ceval, javascript), "
                        "dropping test questions also in train; default: one log of every file")
    c.set_defaults(func=_convert, inputs=("src",))
