"""The README's quick starts run as written: both blocks are extracted from README.md and run
on the public data (slow; skipped with the reason when the data is absent)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(title: str, lang: str) -> str:
    """Every ``lang`` code block under the README heading ``title``, in order, as one script."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README.md has no section {title!r}"
    blocks = re.findall(rf"```{lang}\n(.*?)```", m.group(1), re.S)
    assert blocks, f"README.md section {title!r} has no {lang} block"
    return "\n".join(blocks)


def test_cli_block_has_no_placeholders():
    block = _block("Quick start (command line)", "bash")
    commands = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands and all(ln.startswith("v0lite ") for ln in commands), commands
    for ln in commands:
        code = ln.split("  #")[0]
        assert not re.search(r"\[|\]|<[A-Za-z]|\.\.\.|\bA,B\b|a,b,c", code), ln
    order = [ln.split()[1] if ln.split()[1] != "data" else " ".join(ln.split()[1:3]) for ln in commands]
    firsts = {
        step: order.index(step)
        for step in ("data convert", "evaluate", "fit", "predict", "route-eval", "route", "alloc-sim")
    }
    assert list(firsts.values()) == sorted(firsts.values()), order


def _data_dir() -> Path:
    env = os.environ.get("V0LITE_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture
def project(tmp_path):
    """A project root in tmp_path with ../shared/data pointing at the real data, and a `v0lite` on PATH."""
    data = _data_dir()
    needed = ["v0-dapomath", "routerdc-routerbench", "oneshot-rlvr-dsr-sub"]
    if not all((data / d).is_dir() for d in needed):
        pytest.skip(f"public data not found under {data} (set V0LITE_DATA); the README needs {needed}")
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data.resolve(), target_is_directory=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "v0lite"
    exe.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m v0lite "$@"\n')
    exe.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    )
    env.pop("V0LITE_DATA", None)  # the README reads ../shared/data itself
    return root, env


@pytest.mark.slow
def test_readme_command_line_quick_start_runs(project):
    root, env = project
    script = "set -e\nset -x\n" + _block("Quick start (command line)", "bash")
    res = subprocess.run(["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    for name in (
        "metrics.json",
        "model",
        "scored.jsonl",
        "route.json",
        "frontier.png",
        "router",
        "prices.json",
        "routed.jsonl",
        "alloc.json",
    ):
        assert (root / name).exists(), name


@pytest.mark.slow
def test_readme_python_quick_start_runs(project):
    root, env = project
    code = _block("Quick start (Python)", "python")
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
