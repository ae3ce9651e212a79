"""The ``v0lite`` command line: thin; parses arguments, calls the library, prints tables."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from .exceptions import V0liteError

__all__ = ["main", "build_parser", "command_flags"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from ._version import __version__
    from .commands import MODULES

    parser = _Parser(
        prog="v0lite",
        description="Predict an LLM policy's success on a prompt before rollout, from its history of outcomes.",
    )
    parser.add_argument("--version", action="version", version=f"v0lite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in MODULES:
        importlib.import_module(f"v0lite.commands.{name}").register(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose invalid choice (a mistyped subcommand, ``v0lite evalute``) names the nearest
    valid one, as an unknown flag does (:func:`_nearest`). Its subparsers are of this class too."""

    def parse_known_args(self, args=None, namespace=None):
        # kept for error(): a subcommand's parser gets the words after its name
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        super().error(message + _dash_file_hint(self, getattr(self, "_words", ())))

    def _check_value(self, action, value):
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            hint = _nearest([value], action.choices) if all(isinstance(c, str) for c in action.choices) else ""
            if not hint:
                raise
            raise argparse.ArgumentError(action, exc.message + hint) from None


def _nearest(typed, valid) -> str:
    """`` (did you mean X?)``: the nearest of ``valid`` to each of ``typed`` (a flag, a subcommand), or ""."""
    import difflib

    near = [m for x in typed for m in difflib.get_close_matches(x, list(valid), 1)]
    return f" (did you mean {', '.join(dict.fromkeys(near))}?)" if near else ""


# suffixes that make a word starting with "-" a file name, not a mistyped flag (besides an existing path)
_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".png", ".tsv", ".txt", ".gz")


def _dash_file_hint(parser: argparse.ArgumentParser, words) -> str:
    """`` (-x.jsonl is read as a flag: pass ./-x.jsonl)``: argparse takes every word starting with "-" for
    a flag, so a file named so is "missing" (the positional it was meant for) or leaves the flag before it
    "expected one argument". Said for the first such word that is no flag of ``parser`` and exists or has
    a file suffix; "" when there is none."""
    import os

    known = parser._option_string_actions
    for i, word in enumerate(words):
        word = str(word)
        if not word.startswith("-") or word == "-" or word.split("=")[0] in known:
            continue
        if not (os.path.lexists(word) or os.path.splitext(word)[1].lower() in _FILE_SUFFIXES):
            continue
        before = str(words[i - 1]) if i else ""
        takes = before in known and known[before].nargs != 0  # a flag that wants a value: --out -o.jsonl
        return f" ({word} is read as a flag: pass ./{word}{f', or {before}={word}' if takes else ''})"
    return ""


def _flag(name: str) -> str:
    # positionals read as their metavar (HISTORY), options as their flag (--cost-log)
    return "--" + name.replace("_", "-") if name in _OPTIONS else name.upper()


_OPTIONS = ("cost_log", "model_dir", "upstreams", "api_keys")  # the inputs given as options
# what an input option holds, for the fix when it names a folder (a log file otherwise)
_HOLDS = {"upstreams": "the JSON file of upstreams", "api_keys": "the file of API keys"}


def _check_inputs(args) -> None:
    """Input paths fail here, before any heavy import (a subcommand names them in ``inputs``): a missing
    path "does not exist", a folder where a file belongs "is a directory", a FIFO or a device is refused
    without opening it, a model folder must hold a model. Then no output may resolve to an input: the
    outputs a subcommand names in ``outputs`` ({name: flag}, or a function of the arguments) and the folders
    it replaces in ``replaces``. An output file that exists and is not empty needs ``--force``."""
    from pathlib import Path

    from .commands._common import (
        check_cache_env,
        check_input,
        check_model_dir,
        check_name_fits,
        check_no_overwrite,
        check_no_replace,
        check_regular,
    )

    _check_no_dash(args)
    reads = {}
    for name in getattr(args, "inputs", ()):
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "model_dir":
            check_model_dir(value, router_flag="--router" if hasattr(args, "router") else None)
        else:
            check_input(value, _flag(name), folder_ok=name == "src", holds=_HOLDS.get(name))
        reads[_flag(name)] = value
    # also read, when they name a path (--prices may be inline JSON): never an output, even with --force
    for name in ("prices", "router", "encoder", "candidates", "prompt_dict"):
        value = getattr(args, name, None)
        flag = "--" + name.replace("_", "-")
        if isinstance(value, str) and value and not value.lstrip().startswith("{") and Path(value).exists():
            check_regular(value, flag, folder_ok=True)
            reads[flag] = value
    outputs = getattr(args, "outputs", {})
    writes = outputs(args) if callable(outputs) else {flag: getattr(args, n, None) for n, flag in outputs.items()}
    replaces = {flag: getattr(args, n, None) for n, flag in getattr(args, "replaces", {}).items()}
    for paths, folder in ((writes, False), (replaces, True)):  # first: a too-long name raises in exists()
        for flag, path in paths.items():
            check_name_fits(path, flag, folder=folder)
    check_no_overwrite(reads, writes, replaces)
    check_no_replace(writes, getattr(args, "force", False))  # an existing file only with --force
    if getattr(args, "command", None) != "data":  # every other command embeds prompts
        check_cache_env()


def _check_no_dash(args) -> None:
    """``-`` (stdin/stdout) where a path belongs is refused in flag terms: it was read as a file named "-"
    ("does not exist", ``--out -.jsonl``, a model folder named ``-``). So is a quoted ``"~/x"``
    (:func:`~v0lite.commands._common.check_typed`), in every path flag."""
    from .commands._common import check_typed
    from .exceptions import DataError

    outputs = getattr(args, "outputs", {})
    names = {n: _flag(n) for n in getattr(args, "inputs", ())}
    names.update({} if callable(outputs) else outputs)
    names.update(getattr(args, "replaces", {}))
    if callable(outputs):  # data convert: OUT (its files are derived from it)
        names.setdefault("out", "OUT")
    names.update({n: "--" + n.replace("_", "-") for n in ("candidates", "prompt_dict", "router", "data_dir")})
    for name in ("prices", "encoder"):  # a path or not (inline JSON, a model name): "~/x" is never meant
        check_typed(getattr(args, name, None), "--" + name)
    for name, flag in names.items():
        check_typed(getattr(args, name, None), flag)
        if getattr(args, name, None) == "-":
            raise DataError(
                f"{flag} -: v0lite reads and writes files and folders, not standard input or output. Fix: pass a "
                f"path for {flag} (save a stream to a file first)."
            )


def _unknown_arguments(parser, args, extra) -> None:
    """``parser.error`` of the (sub)command that got ``extra``, naming the nearest of its flags (exits 2)."""
    sub = parser
    for attr in ("command", "data_command"):
        name = getattr(args, attr, None)
        acts = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if not name or not acts or name not in acts[0].choices:
            break
        sub = acts[0].choices[name]
    flags = [f for a in sub._actions for f in a.option_strings]
    hint = _nearest([x.split("=")[0] for x in extra if x.startswith("-")], flags)
    sub.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def main(argv=None) -> int:
    """Entry point of the ``v0lite`` executable; returns the exit status."""
    try:
        parser = build_parser()
    except KeyboardInterrupt:  # Ctrl-C while starting: the same line and status as later, no traceback
        print("v0lite: interrupted.", file=sys.stderr)
        return 130
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the command's own parser (its usage, a near flag), not the top level's
            _unknown_arguments(parser, args, extra)
    except SystemExit as exc:  # bad arguments (argparse printed the message and the valid choices), --help
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .commands._common import command_name, say

    name = command_name(args)
    flags = command_flags(parser, name)
    import warnings

    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # a CLI user has no use for file:line
        from .commands._common import cli_text

        text = cli_text(str(message), flags)
        if text not in shown:  # a log read twice (the command's check, then the library's) warns once
            shown.add(text)
            say(name, "warning", text)

    with warnings.catch_warnings():
        warnings.showwarning = show
        return _run(args, name, flags)


def command_flags(parser: argparse.ArgumentParser, name: str) -> frozenset[str]:
    """The option strings of subcommand ``name`` ("fit", "data convert"): what its fixes may name."""
    for word in name.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return frozenset(s for a in parser._actions for s in a.option_strings)


def _run(args, name: str, flags: frozenset[str] | None = None) -> int:
    try:
        _check_inputs(args)
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `v0lite ... | head`: the reader left; say nothing more, as a killed pipe writer
        import os

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except (V0liteError, OSError) as exc:  # OSError: missing/unwritable paths, full disk
        from .commands._common import cli_text, say

        text = cli_text(str(exc), flags)
        if isinstance(exc, OSError) and "Fix:" not in text:  # a path the system refused: name the remedy too
            import errno

            fix = (
                "free space on that disk, or choose a path on another disk"
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)  # the path is right: the disk (or quota) is full
                else "check that the path's folder exists and is writable (or choose another path)"
            )
            text = f"{text.rstrip().rstrip('.')}. Fix: {fix}."
        say(name, "error", text)
        return 1
    except KeyboardInterrupt as exc:
        cached, total = getattr(exc, "cached", None), getattr(exc, "total", None)  # embed.EmbeddingInterrupted
        kept = (
            ""
            if cached is None
            else f" while embedding; {cached} of the {total} prompts to embed are cached and will not be embedded again"
            if cached
            else f" while embedding; none of the {total} prompts to embed was cached yet"
        )
        print(f"v0lite {name}: interrupted{kept}.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
