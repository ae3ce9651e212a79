"""CLI: ``v0lite data convert FORMAT SRC OUT``, ``data map SRC OUT --policy COL ...``, ``data split LOG TRAIN TEST``,
``data prices``, ``prompts``."""

from __future__ import annotations

from ..exceptions import DataError
from ._common import (
    _named,
    add_force_flag,
    add_progress_flags,
    add_seed_flag,
    check_input,
    check_output,
    note,
    number_in,
    read_input,
)

__all__ = ["register", "FORMAT_NAMES", "prices_from_log"]

# The names of v0lite.data.CONVERTERS, spelled out so `--help` and argument errors need no import of
# v0lite.data (polars); tests/test_cli.py checks that they match.
FORMAT_NAMES = ("oneshot-rlvr", "routerbench", "routerdc", "v0")
SPLIT_NAMES = ("official",)  # v0lite.data.ROUTERDC_SPLITS, spelled out for the same reason


# the logs a multi-log format writes into its OUT folder (v0lite.data.convert names them)
_MULTI = {"routerbench": ("train", "test"), "routerdc": ("train", "test_id", "test_ood")}


def convert_outputs(args) -> dict[str, str]:
    """``{label: path}`` of every file ``data convert`` will write, for the checks before the work."""
    from pathlib import Path

    out = Path(args.out)
    names = _MULTI.get(args.format) if args.format != "routerdc" or args.split else None
    if names:
        return {f"OUT/{n}.jsonl": str(out / f"{n}.jsonl") for n in names}
    # OUT itself, never OUT.jsonl beside what was named: a name without a suffix is refused by check_output,
    # as every other log output is (the suffix picks the format)
    return {"OUT": str(out)}


def _convert(args) -> int:
    import warnings
    from pathlib import Path

    from ..data._convert import _run, _write

    check_input(args.src, "SRC", folder_ok=True)
    if args.format in _MULTI and (args.format != "routerdc" or args.split) and Path(args.out).suffix:
        raise DataError(
            f"OUT {args.out}: {args.format} writes a folder ({', '.join(f'{n}.jsonl' for n in _MULTI[args.format])} "
            f"inside), and {args.out} has a file suffix. Fix: pass a folder name, e.g. {Path(args.out).stem}/."
        )
    kwargs = {}
    if args.split is not None:
        if args.format != "routerdc":
            raise DataError(
                f"--split {args.split} applies to the routerdc format only, not {args.format!r}. Fix: drop --split."
            )
        kwargs["split"] = args.split
    if args.prompt_dict is not None:
        if args.format != "v0":
            raise DataError(
                f"--prompt-dict applies to the v0 format only, not {args.format!r}. Fix: drop --prompt-dict."
            )
        kwargs["prompt_dict"] = check_input(args.prompt_dict, "--prompt-dict")
    for label, path in convert_outputs(args).items():  # after the flags: a flag that does not apply is the fix
        check_output(path, label)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = _run(args.format, args.src, **kwargs)
        except DataError as exc:
            if args.prompt_dict is not None and str(exc).startswith(str(args.prompt_dict)):
                raise _named(exc, args.prompt_dict, "--prompt-dict") from exc
            raise
    for w in caught:  # the library's warnings, in the CLI's one warning format (after the split's check)
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if args.split is not None and not any("dropped test questions" in str(w.message) for w in caught):
        note(args, "no test question of the split is also in train (none dropped)")
    frames = result if isinstance(result, dict) else {None: result}
    out = _write(result, args.out)
    for name, path in out.items() if isinstance(out, dict) else [(None, out)]:
        repeats = _repeats(frames[name])  # exact repeats of a source line: said, as `data map` says them
        print(
            f"wrote {name + ': ' if name else ''}{path}"
            + (f": {_n(frames[name].height, 'row')}{repeats}" if repeats else "")
        )
    return 0


def _n(n: int, word: str) -> str:
    """``'1 row'``, ``'2 rows'``: the count and its noun, singular for one."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _repeats(df) -> str:
    """``', K repeating an earlier row exactly (kept: each is an observation)'``, or ``''`` when no row repeats
    another (``data map`` and ``data convert`` say it; a repeat may be a second rollout or a copied line)."""
    twins = df.height - df.n_unique()
    return f", {twins} repeating an earlier row exactly (kept: each is an observation)" if twins else ""


def prices_from_log(log) -> dict[str, float]:
    """Mean ``cost`` per call of each policy in an outcome log (RouterBench: USD per call).

    Examples
    --------
    >>> import polars as pl
    >>> prices_from_log(pl.DataFrame({"policy": ["a", "a", "b"], "prompt": ["x", "y", "x"],
    ...                               "score": [1.0, 0.0, 1.0], "cost": [0.002, 0.004, 0.5]}))
    {'a': 0.003, 'b': 0.5}
    """
    import polars as pl

    from ..log import read_log

    df = read_log(log)
    if "cost" not in df.columns:
        raise DataError(
            f"the log has no 'cost' column (columns present: {df.columns}), so there is no price "
            "to average. Fix: convert a log that records cost per call (e.g. routerbench), or write "
            "the prices file by hand: a JSON object model -> USD per call."
        )
    per = df.group_by("policy").agg(pl.col("cost").drop_nulls().mean()).sort("policy")
    empty = per.filter(pl.col("cost").is_null())["policy"].to_list()
    if empty:
        raise DataError(f"column 'cost': policies {empty} have no cost in any row. Fix: fill in their costs.")
    return {p: float(f"{float(c):.6g}") for p, c in zip(per["policy"].to_list(), per["cost"].to_list())}


def _prices(args) -> int:
    from .._io import atomic_write_json

    check_input(args.log, "LOG")
    check_output(args.out, "OUT", (".json",))
    log = read_input(args.log, "LOG")  # its errors (a bad cost) name LOG and the file already
    try:
        prices = prices_from_log(log)
    except DataError as exc:  # no cost column, a policy without cost: named LOG and its file here
        raise _named(exc, args.log, "LOG") from exc
    atomic_write_json(args.out, prices)
    lo, hi = min(prices.values()), max(prices.values())
    print(
        f"wrote {args.out}: {len(prices)} models, mean cost per call {lo:.3g} to {hi:.3g} "
        "(the log's cost unit; USD per call for RouterBench)"
    )
    return 0


def _prompts(args) -> int:
    from ..data._prompts import read_prompt_columns
    from ..log import write_log

    check_input(args.log, "LOG")
    check_output(args.out, "OUT")
    try:  # only prompt, prompt_id and task are read: the file's other columns are not checked
        df = read_prompt_columns(args.log)
    except DataError as exc:
        raise _named(exc, args.log, "LOG") from exc
    keep = df.columns
    out = df.unique("prompt", keep="first", maintain_order=True)
    write_log(out, args.out)
    print(f"wrote {args.out}: {_n(out.height, 'distinct prompt')} of {_n(df.height, 'row')} (columns {keep})")
    return 0


# data map: the library's keyword arguments (their flags: commands/_common._FLAGS, applied by cli_text)
_MAP_ARGS = ("policy", "prompt", "score", "step", "n", "cost", "task", "prompt_id")
_MAP_FLAGS = {name: "--" + name.replace("_", "-") for name in (*_MAP_ARGS, "score_scale", "drop_unscored")}


def _map(args) -> int:
    from ..data._map import _map as map_columns
    from ..log import write_log

    check_input(args.src, "SRC")
    check_output(args.out, "OUT")
    names = {k: getattr(args, k) for k in _MAP_ARGS}
    try:
        df, rows_in = map_columns(
            args.src, **names, score_scale=args.score_scale, drop_unscored=args.drop_unscored, warn_drop=False
        )
    except DataError as exc:
        if exc.column in _MAP_FLAGS:  # "column 'cost_usd' (cost)": the flag that named it
            exc = DataError(str(exc).replace(f" ({exc.column})", f" ({_MAP_FLAGS[exc.column]})", 1))
        raise _named(exc, args.src, "SRC") from exc
    write_log(df, args.out)
    dropped = rows_in - df.height
    note = f", {dropped} without a score dropped (--drop-unscored)" if args.drop_unscored else ""
    note += _repeats(df)
    renamed = ", ".join(f"{v!r} -> {k!r}" for k, v in names.items() if v is not None and v != k) or "none"
    print(f"wrote {args.out}: {_n(df.height, 'row')} out of {rows_in} read{note}; columns renamed: {renamed}")
    return 0


def _split(args) -> int:
    from ..data import split_by_prompt
    from ..log import write_log

    check_input(args.log, "LOG")
    check_output(args.train, "TRAIN")
    check_output(args.test, "TEST")
    log = read_input(args.log, "LOG")
    try:
        train, test = split_by_prompt(log, test_size=args.test_size, random_state=args.random_state)
    except DataError as exc:  # too few prompts to split
        raise _named(exc, args.log, "LOG") from exc
    for out, part in ((args.train, train), (args.test, test)):
        write_log(part, out)
        print(f"wrote {out}: {_n(part.height, 'row')}, {_n(part['prompt'].n_unique(), 'prompt')}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="convert public datasets to the outcome log")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = dsub.add_parser("convert", help="convert a public format to an outcome log")
    c.add_argument("format", choices=FORMAT_NAMES, help="source format")
    c.add_argument(
        "src",
        help="source file or folder (v0: a .jsonl; routerbench, routerdc: the folder; oneshot-rlvr: "
        "dsr_sub_acc_history.jsonl or its folder)",
    )
    c.add_argument(
        "out",
        help="output file, written as named: its suffix picks the format (.jsonl/.csv/.parquet; a name without "
        "one is refused); a folder for routerbench (train/test) and for routerdc --split (train/test_id/test_ood)",
    )
    c.add_argument(
        "--split",
        choices=SPLIT_NAMES,
        default=None,
        help="routerdc only: 'official' writes OUT/train.jsonl (*_train files), OUT/test_id.jsonl "
        "(*_test files) and OUT/test_ood.jsonl (MATH_prealgebra, mbpp, ceval, javascript), "
        "dropping test questions also in train; default: one log of every file",
    )
    c.add_argument(
        "--prompt-dict",
        default=None,
        metavar="FILE",
        help="v0 only: the JSON object '<dataset>_<id>' -> prompt text (default: prompt_dict.json beside SRC)",
    )
    add_force_flag(c)
    add_progress_flags(c)
    c.set_defaults(func=_convert, inputs=("src",), outputs=convert_outputs)

    pr = dsub.add_parser(
        "prices",
        help="write a prices file (model -> mean cost per call) from an outcome log",
        description="Average each model's 'cost' column in LOG and write OUT, a JSON object "
        "model -> cost per call in the log's unit (RouterBench: USD per call), "
        "for `v0lite route --prices` and `v0lite route-eval --prices`.",
    )
    pr.add_argument("log", metavar="LOG", help="outcome log with a 'cost' column (.jsonl/.csv/.parquet)")
    pr.add_argument("out", metavar="OUT", help="prices file to write (.json)")
    add_force_flag(pr)
    add_progress_flags(pr)
    pr.set_defaults(func=_prices, inputs=("log",), outputs={"out": "OUT"})

    pp = dsub.add_parser(
        "prompts",
        help="write the distinct prompts of a log (input for `v0lite route`)",
        description="Write OUT with one row per distinct prompt of LOG (first appearance "
        "order), keeping prompt_id and task where present.",
    )
    pp.add_argument(
        "log",
        metavar="LOG",
        help="any file with a 'prompt' column (only prompt, prompt_id and task are read; every prompt must be "
        "non-empty text)",
    )
    pp.add_argument("out", metavar="OUT", help="file to write (.jsonl/.csv/.parquet)")
    add_force_flag(pp)
    add_progress_flags(pp)
    pp.set_defaults(func=_prompts, inputs=("log",), outputs={"out": "OUT"})

    pm = dsub.add_parser(
        "map",
        help="turn your own table (a spreadsheet export) into an outcome log",
        description="Read SRC (.csv/.jsonl/.json/.parquet), rename the columns you name to the log's names, "
        "read a true/false or yes/no outcome as 1.0/0.0 (any case), divide the scores by --score-scale, "
        "check the result as an outcome log and write OUT. Every other column is kept as it is.",
    )
    pm.add_argument("src", metavar="SRC", help="your table: a .csv, .jsonl, .json or .parquet file with a header")
    pm.add_argument("out", metavar="OUT", help="outcome log to write (.jsonl/.csv/.parquet)")
    for name, what, required in (
        ("policy", "the model or policy name", True),
        ("prompt", "the prompt text (for `v0lite serve`: the last user message)", True),
        ("score", "the outcome: numbers in [0, 1] (see --score-scale), or true/false, yes/no", True),
        ("step", "the training checkpoint (integers)", False),
        ("n", "the rollouts behind each score (integers >= 1)", False),
        ("cost", "the cost of each call (numbers >= 0)", False),
        ("task", "the task or benchmark name", False),
        ("prompt_id", "the prompt's id in its source", False),
    ):
        pm.add_argument(
            _MAP_FLAGS[name], dest=name, metavar="COL", required=required, help=f"the column holding {what}"
        )
    pm.add_argument(
        "--score-scale",
        type=number_in(0, float("inf"), open_lo=True, open_hi=True),
        default=None,
        metavar="K",
        help="divide the scores by K: 100 for percentages, 10 for 0-10 grades (default: scores are in [0, 1])",
    )
    pm.add_argument(
        "--drop-unscored",
        action="store_true",
        help="drop the rows with no score (an empty cell) and say how many (default: they are an error)",
    )
    add_force_flag(pm)
    add_progress_flags(pm)
    pm.set_defaults(func=_map, inputs=("src",), outputs={"out": "OUT"})

    ps = dsub.add_parser(
        "split",
        help="split an outcome log by prompt into TRAIN and TEST (no prompt on both sides)",
        description="Draw --test-size of LOG's distinct prompts (seeded) and write every row of those prompts "
        "to TEST and the other rows to TRAIN, in LOG's order: no prompt is on both sides (prompts that differ only "
        "by case, spaces or Unicode form are drawn as one), so "
        "`v0lite route-eval TRAIN TEST` scores prompts the value model never saw.",
    )
    ps.add_argument("log", metavar="LOG", help="outcome log to split (.jsonl/.csv/.parquet)")
    ps.add_argument("train", metavar="TRAIN", help="file to write the train rows to (.jsonl/.csv/.parquet)")
    ps.add_argument("test", metavar="TEST", help="file to write the test rows to (.jsonl/.csv/.parquet)")
    ps.add_argument(
        "--test-size",
        type=number_in(0, 1, open_lo=True, open_hi=True),
        default=0.2,
        metavar="F",
        help="share of the distinct prompts that go to TEST, in (0, 1) (default 0.2, as split_by_prompt); at least "
        "one prompt goes to each side",
    )
    add_seed_flag(ps, "seed of the draw of the TEST prompts (default 0)")
    add_force_flag(ps)
    add_progress_flags(ps)
    ps.set_defaults(func=_split, inputs=("log",), outputs={"train": "TRAIN", "test": "TEST"})
