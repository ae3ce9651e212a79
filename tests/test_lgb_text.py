"""LightGBM text is checked before LightGBM parses it: a garbled gbdt.txt is a FormatVersionError, never an abort.

LightGBM parses trees in parallel threads and ends the process (exit 134) on a malformed one; it
also trusts tree sizes, child indices and feature indices. Each case below re-seals the folder
(recomputed checksums), as a deliberate edit would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FakeEncoder, make_log
from tests.test_persist import _reseal
from v0lite.estimator import V0Regressor
from v0lite.exceptions import FormatVersionError
from v0lite.heads._lgb_text import check_lightgbm_text


@pytest.fixture(scope="module")
def gbdt_folder(tmp_path_factory):
    from v0lite.estimator import V0Regressor as R

    m = R(head="gbdt", head_params={"n_estimators": 20}, encoder=FakeEncoder(), cache_dir=False)
    path = tmp_path_factory.mktemp("gbdt") / "m"
    m.fit(make_log(n_policies=3, n_prompts=30, steps=True)).save(path)
    return path


def _first_tree(text: str) -> str:
    return text[text.index("\nTree=0") : text.index("\n\n", text.index("\nTree=0"))]


def _edit(text: str, old: str, new: str, *, resize: bool = True) -> str:
    """``text`` with the first match of ``old`` in tree 0 replaced; the header's tree_sizes follow the edit unless
    ``resize`` is False, so that each case meets the one check it is about."""
    tree = _first_tree(text)
    m = re.search(old, tree)
    assert m, old
    text = text.replace(tree, tree[: m.start()] + m.expand(new) + tree[m.end() :], 1)
    if not resize:
        return text
    data = text.encode()
    starts = [m.start() + 1 for m in re.finditer(rb"\nTree=", data)]
    sizes = [b - a for a, b in zip(starts, [*starts[1:], data.index(b"\nend of trees") + 1])]
    return re.sub(r"tree_sizes=.*", "tree_sizes=" + " ".join(map(str, sizes)), text, count=1)


CASES = [
    # a changed byte length: every later tree starts off the header's tree_sizes (LightGBM: abort)
    ("renamed-field", lambda t: t.replace("leaf_value=", "leaf_valu=", 1), "text after its blank line"),
    ("longer", lambda t: _edit(t, r"shrinkage=1", "shrinkage=10", resize=False), "tree 1 does not start"),
    ("truncated", lambda t: t[: len(t) // 2], "past the end"),
    ("no-field", lambda t: _edit(t, r"\nleaf_weight=[^\n]*", ""), "tree 0: no leaf_weight"),
    ("count", lambda t: _edit(t, r"num_leaves=(\d+)", r"num_leaves=\g<1>0"), "values, expected"),
    # LightGBM would load these and read outside the tree or the features at predict time
    ("leaf-out-of-range", lambda t: _edit(t, r"left_child=(-?\d+) ", "left_child=-99 "), "out of range"),
    ("feature-out-of-range", lambda t: _edit(t, r"split_feature=\d+ ", "split_feature=99 "), "split_feature outside"),
    ("cycle", lambda t: _edit(t, r"right_child=-?\d+ ", "right_child=0 "), "reached twice"),
    ("categorical", lambda t: _edit(t, r"num_cat=0", "num_cat=1"), "num_cat=1"),
    ("no-end", lambda t: t.replace("end of trees", "end of tress", 1), "end of trees"),
    ("no-end-of-parameters", lambda t: t.replace("end of parameters", "e6nd of parameters", 1), "end of parameters"),
    ("nul", lambda t: t.replace("tree\n", "tree\n\x00", 1), "not a LightGBM text model"),
    ("two-classes", lambda t: t.replace("num_class=1", "num_class=2", 1), "num_class=2"),
    ("feature-names", lambda t: t.replace("feature_names=Column_0 ", "feature_names=", 1), "feature_names"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_garbled_lightgbm_text_fails_clearly(gbdt_folder, tmp_path, guarantees, case):
    import shutil

    _name, edit, pattern = case
    path = tmp_path / "m"
    shutil.copytree(gbdt_folder, path)
    f = path / "head" / "gbdt.txt"
    text = f.read_text()
    bad = edit(text)
    assert bad != text
    _reseal(path, files={"head/gbdt.txt": bad.encode()})
    with pytest.raises(FormatVersionError, match=rf"gbdt.txt: not a LightGBM model v0lite can load \(.*{pattern}"):
        V0Regressor.load(path, encoder=FakeEncoder())
    guarantees.tick("corruptions detected")


def test_a_valid_model_passes_unchanged(gbdt_folder):
    data = (gbdt_folder / "head" / "gbdt.txt").read_bytes()
    n = len(json.loads((gbdt_folder / "meta.json").read_text())["head"]["meta"]["feature_names"])
    assert check_lightgbm_text(data, n, "x") == data.decode()
    with pytest.raises(FormatVersionError, match="max_feature_idx"):
        check_lightgbm_text(data, n + 1, "x")


_FUZZ = r"""
import random, sys
import numpy as np, lightgbm as lgb
from v0lite.heads._lgb_text import check_lightgbm_text
from v0lite.exceptions import FormatVersionError
data, nf, n = open(sys.argv[1], "rb").read(), int(sys.argv[2]), int(sys.argv[3])
rng, refused, loaded = random.Random(0), 0, 0
digits = [i for i, c in enumerate(data) if 48 <= c <= 57]
for case in range(n):
    b, kind = bytearray(data), case % 5
    if kind == 0:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        i = rng.randrange(len(b)); b[i:i] = bytes([rng.choice(b"0123456789- =\n")])
    elif kind == 2:
        b = b[: rng.randrange(len(b))]
    elif kind == 3:  # the same length: the header's tree sizes stay right
        b[rng.choice(digits)] = rng.choice(b"0123456789-")
    else:
        lines = bytes(b).split(b"\n"); del lines[rng.randrange(len(lines))]; b = bytearray(b"\n".join(lines))
    try:
        text = check_lightgbm_text(bytes(b), nf, "f")
    except FormatVersionError:
        refused += 1
        continue
    try:  # what passes the check must parse and predict without ending the process
        lgb.Booster(model_str=text).predict(np.random.default_rng(case).normal(size=(4, nf)))
    except Exception:
        pass
    loaded += 1
print(f"refused {refused} loaded {loaded}")
"""


def test_random_damage_never_ends_the_process(gbdt_folder, guarantees):
    """300 random edits (bytes changed, inserted, lines dropped, truncation, same-length digit changes): each is
    refused by the check, or LightGBM parses and predicts it; the process is never aborted (it runs in a
    subprocess so that an abort fails this test instead of ending the run)."""
    n_feat = len(json.loads((gbdt_folder / "meta.json").read_text())["head"]["meta"]["feature_names"])
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-c", _FUZZ, str(gbdt_folder / "head" / "gbdt.txt"), str(n_feat), "300"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    refused, loaded = map(int, re.search(r"refused (\d+) loaded (\d+)", r.stdout).groups())
    assert refused + loaded == 300 and refused > 150  # most random damage is refused, none aborts
    guarantees.tick("faults injected", 300)
