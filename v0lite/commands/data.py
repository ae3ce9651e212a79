"""CLI: ``v0lite data convert FORMAT SRC OUT``."""

from __future__ import annotations

__all__ = ["register", "FORMAT_NAMES"]

# The names of v0lite.data.CONVERTERS, spelled out so `--help` and argument errors need no import of
# v0lite.data (polars); tests/test_cli.py checks that they match.
FORMAT_NAMES = ("oneshot-rlvr", "routerbench", "routerdc", "v0")


def _convert(args) -> int:
    from ..data import convert

    out = convert(args.format, args.src, args.out)
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
    c.add_argument("out", help="output file (.jsonl/.csv/.parquet), or folder for routerbench (train/test)")
    c.set_defaults(func=_convert, inputs=("src",))
