"""The README's "Serve" quick start runs as written (slow: it fits a router with the real MiniLM).

The block is extracted from README.md and run by bash in a fresh project folder holding the demo
data. Two substitutions only: the ports 8000 (the service) and 8001 (the upstream) become free
ones, so the test never binds a fixed port; the upstream is the OpenAI-compatible stub of the
serve tests. Every process the block starts is in one process group, killed at the end.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from tests.serve_util import ROOT, free_port, serve_in_thread, stub_upstream
from tests.test_readme import _block


def test_serve_block_names_its_steps():
    block = _block("Serve", "bash")
    for step in ("route-eval", "--save-router", "v0lite serve", "/v1/route", "OpenAI(", "/v1/feedback", "kill"):
        assert step in block, step
    # the test moves the two ports to free ones: the block must spell them where it is replaced
    assert (
        "--port 8000" in block
        and "127.0.0.1:8001/v1" in block
        and block.count("8000") == block.count("127.0.0.1:8000") + 1
    )


@pytest.mark.slow
def test_readme_serve_quick_start_runs(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (the quick start calls it)")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "data", project / "data")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, cmd in (("v0lite", f"{shlex.quote(sys.executable)} -m v0lite"), ("python", shlex.quote(sys.executable))):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {cmd} "$@"\n')
        (bin_dir / name).chmod(0o755)
    port = free_port()
    with serve_in_thread(stub_upstream(), max_seconds=600) as up:
        script = _block("Serve", "bash").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        script = script.replace("--port 8000", f"--port {port}")
        script = script.replace("127.0.0.1:8001", up.removeprefix("http://"))
        env = dict(
            os.environ,
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        )
        proc = subprocess.Popen(
            ["bash", "-c", "set -e\n" + script],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=540)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the background server too, whatever happened
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, err[-4000:]
    assert '"model":"synthetic-' in out and '"p":{' in out  # the curl route
    assert "echo: What is 8 + 33?" in out  # the openai SDK call, answered by the upstream
    assert '"stored":1' in out  # the feedback
    assert (project / "demo-router" / "meta.json").exists() and (project / "outcomes" / "outcomes.sqlite3").exists()
