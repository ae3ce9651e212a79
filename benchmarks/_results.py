"""Shared helpers of the benchmark scripts: machine description and RESULTS.md sections."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from v0lite._io import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def command_line(script: str, argv=None) -> str:
    """The command that ran ``benchmarks/<script>``, quoted so it can be pasted (an empty argument shows as '')."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", f"benchmarks/{script}", *args])


def machine_info() -> str:
    """One line: date, cores, memory, CPU model, Python."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"Date: {date}; machine: {os.cpu_count()} cores{mem}, {cpu}; Python {platform.python_version()}; "
        f"load average {load} (a shared machine: timings are noisy)"
    )


def write_section(name: str, title: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n## {title}\n\n{body.strip()}\n{end}"
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else "# v0lite benchmark results\n\nEach section is written by its script (see the command line in it).\n"
    )
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def command_with_env(script: str, argv=None, env_names=(), environ=None) -> str:
    """:func:`command_line` prefixed with ``NAME=value`` for each of ``env_names`` that is set (and non-empty).

    A variable the run did not have is not written: the section names the command that actually ran.
    """
    env = os.environ if environ is None else environ
    prefix = [f"{name}={shlex.quote(env[name])}" for name in env_names if env.get(name)]
    return " ".join([*prefix, command_line(script, argv)])


def parse_quick(parser, argv=None, quick_defaults=None):
    """Parse ``argv``; with ``--quick``, ``quick_defaults`` replace the parser's defaults and ``no_write`` is set.

    Flags given on the command line still win over the quick defaults. A quick run is a smoke test, never a
    result: it never writes RESULTS.md.
    """
    args = parser.parse_args(argv)
    if args.quick:
        if quick_defaults:
            parser.set_defaults(**quick_defaults)
            args = parser.parse_args(argv)
        args.no_write = True
    return args
