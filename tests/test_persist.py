"""Saved models: safe formats only, version and corruption checks, atomic save, byte-identical saves."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FakeEncoder, make_log
from v0lite.estimator import V0Regressor
from v0lite.exceptions import FormatVersionError
from v0lite.persist import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[1] / "v0lite"


SAFE_SUFFIXES = {".json", ".safetensors", ".txt", ".faiss", ".npy"}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


@pytest.fixture
def saved(tmp_path, make_model):
    log = make_log(steps=True)
    model = make_model().fit(log)
    path = tmp_path / "model"
    model.save(path)
    return model, path, log


def test_round_trip_predicts_identically(saved):
    model, path, log = saved
    back = V0Regressor.load(path, encoder=FakeEncoder())
    np.testing.assert_array_equal(back.predict(log), model.predict(log))
    assert back.get_params()["head"] == model.head and back.encoder_id_ == "fake-ngram-64"
    assert back.index_.policies == model.index_.policies


def test_saved_files_use_only_safe_formats(saved):
    _, path, _ = saved
    for f in path.rglob("*"):
        if f.is_file():
            assert f.suffix in SAFE_SUFFIXES, f
            assert not f.read_bytes().startswith(b"\x80")  # no pickle protocol header
    meta = json.loads((path / "meta.json").read_text())
    assert meta["format"] == "v0lite-model" and meta["format_version"] == FORMAT_VERSION


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o027)``), restored after."""
    before = os.umask(0o022)
    yield os.umask
    os.umask(before)


def _modes(folder: Path) -> dict[str, int]:
    return {str(f.relative_to(folder)): f.stat().st_mode & 0o777 for f in [folder, *sorted(folder.rglob("*"))]}


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_saved_folders_get_the_usual_permissions_under_the_umask(tmp_path, make_model, umask, mask):
    """Not mkdtemp's 0700 nor safetensors' 0600: another user (a service account) reads what the umask allows."""
    umask(mask)
    make_model().fit(make_log(steps=True)).save(tmp_path / "model")
    modes = _modes(tmp_path / "model")
    assert "history.safetensors" in modes and "meta.json" in modes
    for name, mode in modes.items():
        want = 0o777 & ~mask if (tmp_path / "model" / name).is_dir() else 0o666 & ~mask
        assert mode == want, (name, oct(mode), oct(want))
    make_model().fit(make_log(steps=True)).save(tmp_path / "model")  # replacing it (the swap) keeps them
    assert _modes(tmp_path / "model") == modes


def test_newer_format_version_fails_clearly(saved):
    _, path, _ = saved
    meta = json.loads((path / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FormatVersionError, match="format version 2 is not supported.*upgrade v0lite"):
        V0Regressor.load(path, encoder=FakeEncoder())


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FormatVersionError, match="no meta.json"):
        V0Regressor.load(tmp_path, encoder=FakeEncoder())


@pytest.mark.parametrize("target", ["history.safetensors", "meta.json"])
def test_any_flipped_byte_fails_clearly(saved, guarantees, target):
    """Flip bytes of the file (meta.json: every 3rd byte; history: 60 positions spread over it)."""
    _, path, _ = saved
    f = path / target
    orig = f.read_bytes()
    positions = range(0, len(orig), 3) if target == "meta.json" else np.linspace(0, len(orig) - 1, 60).astype(int)
    for pos in positions:
        bad = bytearray(orig)
        bad[pos] ^= 0x01 if chr(orig[pos]).isalnum() else 0xFF
        f.write_bytes(bytes(bad))
        with pytest.raises(FormatVersionError, match="corrupt|not supported|not a v0lite|Fix"):
            V0Regressor.load(path, encoder=FakeEncoder())
        guarantees.tick("corruptions detected")
    f.write_bytes(orig)
    V0Regressor.load(path, encoder=FakeEncoder())


def test_missing_file_fails_clearly(saved):
    _, path, _ = saved
    (path / "history.safetensors").unlink()
    with pytest.raises(FormatVersionError, match="missing or corrupt"):
        V0Regressor.load(path, encoder=FakeEncoder())


@pytest.mark.parametrize("where", ["head", "arrays", "final_swap", "final_rename"])
def test_crash_mid_save_leaves_the_old_model_intact(saved, monkeypatch, make_model, guarantees, where):
    import v0lite.persist as persist

    model, path, log = saved
    before = _digests(path)
    other = make_model(head="prior").fit(make_log(n_policies=2, seed=3))

    def boom(*a, **k):
        raise RuntimeError("injected crash")

    if where == "head":
        monkeypatch.setattr(type(other.head_), "save", boom)
    elif where == "arrays":
        monkeypatch.setattr(persist, "save_arrays", boom)
    elif where == "final_swap":
        monkeypatch.setattr(persist, "_exchange", boom)
    else:  # a file system without an atomic swap: two renames
        monkeypatch.setattr(persist, "_exchange", lambda a, b: False)
        real = os.replace

        def replace(src, dst):
            if Path(dst) == path and Path(src).name.endswith(".tmp"):
                raise RuntimeError("injected crash")
            return real(src, dst)

        monkeypatch.setattr(persist.os, "replace", replace)
    guarantees.tick("faults injected")
    with pytest.raises(RuntimeError, match="injected"):
        other.save(path)
    monkeypatch.undo()
    assert _digests(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model"]  # no temp folder left behind
    np.testing.assert_array_equal(V0Regressor.load(path, encoder=FakeEncoder()).predict(log), model.predict(log))


def test_save_replaces_an_existing_model(saved, make_model):
    _, path, _ = saved
    other = make_model(head="prior").fit(make_log(n_policies=2, seed=3))
    other.save(path)
    assert V0Regressor.load(path, encoder=FakeEncoder()).head == "prior"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model"]


@pytest.mark.parametrize("head", ["knn", "prior", "logistic", "ridge", "irt", "auto"])
def test_same_inputs_give_byte_identical_files(tmp_path, make_model, guarantees, head):
    log = make_log(steps=True)
    a = make_model(head=head, random_state=7).fit(log)
    b = make_model(head=head, random_state=7).fit(log.clone())
    np.testing.assert_array_equal(a.predict(log), b.predict(log))
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    da, db = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert da == db
    guarantees.tick("files checked byte-identical", len(da))
    # loading and re-saving changes nothing either
    V0Regressor.load(tmp_path / "a", encoder=FakeEncoder()).save(tmp_path / "c")
    assert _digests(tmp_path / "c") == da


# --- no module may deserialise code -----------------------------------------------------------------

_BANNED_MODULES = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal"}


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
            yield node, owner, name


def _kw(node, name):
    for k in node.keywords:
        if k.arg == name and isinstance(k.value, ast.Constant):
            return k.value.value
    return "absent"


def test_no_module_uses_pickle_and_np_load_never_allows_it():
    problems = []
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 10
    for f in files:
        tree = ast.parse(f.read_text("utf-8"), str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [
                    f"{f.name}: import {a.name}" for a in node.names if a.name.split(".")[0] in _BANNED_MODULES
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _BANNED_MODULES:
                problems.append(f"{f.name}: from {node.module} import")
        for node, owner, name in _calls(tree):
            where = f"{f.name}:{node.lineno}"
            if owner in _BANNED_MODULES:
                problems.append(f"{where}: {owner}.{name}")
            if owner in ("np", "numpy") and name == "load" and _kw(node, "allow_pickle") is not False:
                problems.append(f"{where}: np.load without allow_pickle=False")
            if owner == "torch" and name == "load" and _kw(node, "weights_only") is not True:
                problems.append(f"{where}: torch.load without weights_only=True")
            if isinstance(node.func, ast.Name) and name in ("eval", "exec"):  # the builtins, not model.eval()
                problems.append(f"{where}: {name}()")
            if owner in ("pd", "pandas") and name == "read_pickle":
                problems.append(f"{where}: pandas.read_pickle")
    assert not problems, problems


@pytest.mark.slow
@pytest.mark.parametrize("head", ["gbdt", "transformer", "ensemble"])
def test_learned_heads_save_byte_identical_files(tmp_path, make_model, guarantees, head):
    """Learned heads too: same data + random_state -> same predictions and same bytes (~50 s each)."""
    from v0lite.exceptions import V0liteError
    from v0lite.heads.base import get_head_class

    try:
        get_head_class(head)
    except V0liteError as exc:
        pytest.skip(str(exc))
    log = make_log(n_policies=4, n_prompts=40, steps=True)
    a = make_model(head=head, random_state=3).fit(log)
    b = make_model(head=head, random_state=3).fit(log)
    np.testing.assert_array_equal(a.predict(log), b.predict(log))
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    da = _digests(tmp_path / "a")
    assert da == _digests(tmp_path / "b")
    guarantees.tick("files checked byte-identical", len(da))


# --- a save never removes what it did not write --------------------------------------------------------


@pytest.mark.parametrize(
    "layout",
    [
        {"thesis.txt": "my thesis"},
        {"sub/results.csv": "a,b\n1,2\n"},
        {"meta.json": '{"format": "something-else"}', "data.bin": "x"},
        {"meta.json": "not json at all"},
    ],
)
def test_save_refuses_a_folder_holding_other_files(tmp_path, make_model, guarantees, layout):
    """The issue's case: fit --model-dir precious wiped precious/thesis.txt and precious/sub/results.csv."""
    from v0lite.exceptions import DataError

    target = tmp_path / "precious"
    for rel, text in layout.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(text)
    before = _digests(target)
    model = make_model().fit(make_log())
    with pytest.raises(DataError, match=r"precious: holds files v0lite did not write .*Fix: save to another path"):
        model.save(target)
    guarantees.tick("bad-input cases tried")
    assert _digests(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]  # nothing written beside it either


def test_save_refuses_extra_files_inside_a_model_folder(saved, make_model):
    """A model folder the user added a file to is not v0lite's alone any more: the file is never deleted."""
    from v0lite.exceptions import DataError

    _, path, _ = saved
    (path / "head" / "notes.md").write_text("mine")
    with pytest.raises(DataError, match=r"head/notes.md"):
        make_model(head="prior").fit(make_log()).save(path)
    assert (path / "head" / "notes.md").read_text() == "mine"


def test_save_refuses_a_router_folder_and_a_file(saved, tmp_path, make_model):
    from v0lite.exceptions import DataError
    from v0lite.persist import check_save_target

    _, path, _ = saved
    with pytest.raises(DataError, match="holds a v0lite-model folder, not a v0lite-router one"):
        check_save_target(path, "v0lite-router", flag="--save-router")
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="--model-dir .*f: is a file"):
        check_save_target(tmp_path / "f", flag="--model-dir")


def test_save_into_an_empty_folder_and_over_its_own_model(tmp_path, make_model):
    from v0lite.persist import check_save_target

    (tmp_path / "empty").mkdir()
    m = make_model().fit(make_log())
    m.save(tmp_path / "empty")
    assert check_save_target(tmp_path / "empty") == tmp_path / "empty"  # a model folder: replaceable
    m.save(tmp_path / "empty")
    V0Regressor.load(tmp_path / "empty", encoder=FakeEncoder())


def test_save_refuses_the_current_folder_and_above(tmp_path, monkeypatch, make_model, guarantees):
    from v0lite.exceptions import DataError

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    model = make_model().fit(make_log())
    for target in (".", "..", str(work), "/"):
        with pytest.raises(DataError, match="is the current folder or one above it.*Fix: name a new sub-folder"):
            model.save(target)
        guarantees.tick("bad-input cases tried")
    assert list(work.iterdir()) == []


# --- crash-safe replace: kill the process at every step of a save --------------------------------------

_KILL_SCRIPT = r"""
import json, os, shutil, sys
from pathlib import Path
import v0lite.persist as P

src, dst, step, mode = sys.argv[1:5]
dst = Path(dst)

def hook(name):
    if name != step.split("+")[0]:
        return
    if step.endswith("+partial"):  # killed halfway through removing the replaced folder
        for f in dst.parent.iterdir():
            if f.name.startswith("." + dst.name + ".") and (f / "history.safetensors").exists():
                (f / "history.safetensors").unlink()
    os._exit(77)

P._STEP_HOOK = hook
if mode == "rename":
    P._exchange = lambda a, b: False
meta = json.loads((Path(src) / "meta.json").read_text())
own = {"format", "format_version", "v0lite_version", "files", "meta_sha256"}

def fill(tmp):  # the files of a saved model, as save_model_folder writes them
    (tmp / "head").mkdir()
    for rel in meta["files"]:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(src) / rel, tmp / rel)

P.write_folder(dst, fill, {k: v for k, v in meta.items() if k not in own},
               format_name=P.FORMAT_NAME, format_version=P.FORMAT_VERSION)
"""


def test_leftovers_of_a_running_save_are_left_alone(saved):
    """A leftover whose process is alive (a save in progress in another process) is not touched."""
    import subprocess
    import sys
    import warnings

    _, path, _ = saved
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = path.with_name(f".{path.name}.{proc.pid}.abcd1234.tmp")
        live.mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            V0Regressor.load(path, encoder=FakeEncoder())
        assert live.exists()
    finally:
        proc.kill()
        proc.wait()


# --- loading is total: a folder whose checksums pass still cannot crash or hang the loader --------------


def _reseal(path: Path, meta_edit=None, arrays_edit=None, files=None, arrays_file="history.safetensors") -> None:
    """Edit a model (or router: ``arrays_file="arrays.safetensors"``) folder and recompute its checksums, as
    someone who edits it on purpose would."""
    from v0lite._io import load_arrays, save_arrays, sha256_file
    from v0lite.persist import _meta_digest

    for rel, data in (files or {}).items():
        (path / rel).write_bytes(data)
    if arrays_edit is not None:
        a = load_arrays(path / arrays_file)
        arrays_edit(a)
        save_arrays(path / arrays_file, a)
    meta = json.loads((path / "meta.json").read_text())
    if meta_edit is not None:
        meta_edit(meta)
    meta["files"] = {rel: sha256_file(path / rel) for rel in meta["files"]}
    meta["meta_sha256"] = _meta_digest(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


TAMPER = [
    ("head-name", _set("head", "name", "nope"), None, r"'nope' head cannot be loaded.*ParameterError"),
    ("param-head", _set("params", "head", "nope"), None, r"head cannot be loaded"),
    ("k-10^12", _set("params", "k", 10**12), None, r"parameter 'k' is '1000000000000', not an integer"),
    ("k-text", _set("params", "k", "many"), None, r"parameter 'k'"),
    (
        "fallback",
        _set("params", "fallback", 5),
        None,
        r"parameter 'fallback' is '5', not 'error', 'global_mean' or 'prior'",
    ),
    ("batch", _set("params", "batch_size", -1), None, r"parameter 'batch_size'"),
    # fit's own checks (a seed fit refuses; get_params naming another head than predicts; a missing head read as auto)
    ("seed", _set("params", "random_state", -1), None, r"parameter 'random_state' is '-1', not an integer in \[0, "),
    ("seed-null", _set("params", "random_state", None), None, r"parameter 'random_state' is 'None'"),
    (
        "param-head-other",
        _set("params", "head", "gbdt"),
        None,
        r"parameter 'head' is 'gbdt', but the saved head is 'knn'",
    ),
    ("param-head-missing", lambda m: m["params"].pop("head"), None, r"'params' lacks 'head'"),
    ("unknown-param", _set("params", "evil", 1), None, r"unknown parameter 'evil'"),
    ("params-list", _set("params", [1, 2]), None, r"'params' is list"),
    ("policies", _set("policies", "pol0"), None, r"'policies' is not a list"),
    ("policies-dup", lambda m: m["policies"].__setitem__(1, m["policies"][0]), None, r"names a policy twice"),
    ("encoder-id", _set("encoder_id", 7), None, r"'encoder_id'"),
    ("head-meta", _set("head", "meta", None), None, r"'head' is not an object"),
    ("head-params", _set("head", "meta", "params", {"bogus": 1}), None, r"parameters are not valid.*'bogus'"),
    ("head-temp", _set("head", "meta", "params", "temperature", "hot"), None, r"not valid.*'temperature'"),
    ("codes", None, lambda a: a["policy"].__setitem__(0, 99), r"policy codes outside 0..2"),
    ("rows", None, lambda a: a["prompt_row"].__setitem__(0, -5), r"prompt rows outside"),
    ("score", None, lambda a: a["score"].__setitem__(0, 2.0), r"scores outside \[0, 1\]"),
    ("emb-nan", None, lambda a: a["emb"].__setitem__((0, 0), np.nan), r"emb holds non-finite values"),
    ("no-array", None, lambda a: a.pop("step"), r"history.safetensors lacks \['step'\]"),
    ("short", None, lambda a: a.__setitem__("n", a["n"][:-1]), r"n has shape"),
]


@pytest.mark.parametrize("case", TAMPER, ids=[c[0] for c in TAMPER])
def test_any_edited_value_fails_clearly_at_load(saved, guarantees, case):
    """Edited meta.json values and arrays with recomputed checksums: a FormatVersionError naming the value and
    the fix, never a TypeError traceback, a huge allocation (k = 10^12) or a crash at the first predict."""
    _, path, _ = saved
    _name, meta_edit, arrays_edit, pattern = case
    _reseal(path, meta_edit, arrays_edit)
    with pytest.raises(FormatVersionError, match=pattern + r".*Fix: re-save"):
        V0Regressor.load(path, encoder=FakeEncoder())
    guarantees.tick("corruptions detected")


def test_a_huge_k_in_the_heads_meta_reads_every_row_without_allocating_it(saved, guarantees):
    model, path, log = saved
    _reseal(path, _set("head", "meta", "params", "k", 10**12))
    back = V0Regressor.load(path, encoder=FakeEncoder())
    big = model.set_params(k=log.height)  # k at least the history's rows: the same neighbours
    big.head_.params["k"] = log.height
    np.testing.assert_allclose(back.predict(log), big.predict(log))
    guarantees.tick("corruptions detected")


def test_garbled_texts_json_fails_clearly(tmp_path, make_model):
    m = make_model(head="knn").fit(make_log())
    m.index_.texts = ["x"] * len(m.index_.keys)  # a model that keeps its texts
    m.save(tmp_path / "m")
    _reseal(tmp_path / "m", files={"texts.json": b"[not json"})
    with pytest.raises(FormatVersionError, match="texts.json: corrupt JSON"):
        V0Regressor.load(tmp_path / "m", encoder=FakeEncoder())


@pytest.mark.parametrize("head", ["linear", "gbdt"])
def test_a_changed_head_file_fails_its_checksum(tmp_path, make_model, guarantees, head):
    """A head file changed so that it still parses (one digit of a leaf value, one byte of a weight): only its
    checksum can tell, and it does."""
    m = make_model(head=head, head_params={"n_estimators": 20} if head == "gbdt" else None).fit(
        make_log(n_policies=3, n_prompts=30, steps=True)
    )
    m.save(tmp_path / "m")
    f = next(p for p in (tmp_path / "m" / "head").iterdir() if p.suffix in (".txt", ".safetensors"))
    data = bytearray(f.read_bytes())
    if f.suffix == ".txt":
        i = data.index(b"leaf_value=") + len(b"leaf_value=") + 3  # a digit inside the first leaf value
        data[i] = ord("7") if data[i] != ord("7") else ord("3")
    else:
        data[-3] ^= 0x01  # inside the last weight
    f.write_bytes(bytes(data))
    with pytest.raises(FormatVersionError, match=r"head.*checksum mismatch.*Fix"):
        V0Regressor.load(tmp_path / "m", encoder=FakeEncoder())
    guarantees.tick("corruptions detected")


def test_files_beside_a_model_that_only_look_like_leftovers_are_kept(saved, make_model):
    """Recovery removes exactly the names a save makes, of dead processes: a user's look-alikes stay."""
    _, path, _ = saved
    mine = [".model.backup.tmp", ".model.old-copy", ".model.notes", ".model.1.x.tmp"]
    for name in mine:
        (path.parent / name).write_text("mine")
    V0Regressor.load(path, encoder=FakeEncoder())
    make_model(head="prior").fit(make_log()).save(path)
    assert all((path.parent / name).read_text() == "mine" for name in mine)


def test_a_first_save_killed_after_writing_is_completed_by_the_next_load(tmp_path, make_model, guarantees):
    """No folder at the path yet: a save killed once its folder is complete (before the rename) is put in place
    by the next load (checksums verified first), which says so; killed earlier, nothing is left behind."""
    import subprocess
    import sys
    import warnings

    from v0lite.exceptions import V0liteWarning

    model = make_model(head="prior").fit(make_log(steps=True))
    model.save(tmp_path / "src")
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    for step, expect in (("filled", None), ("meta", "completed an interrupted save")):
        path = tmp_path / f"new-{step}"
        r = subprocess.run(
            [sys.executable, "-c", _KILL_SCRIPT, str(tmp_path / "src"), str(path), step, "swap"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 77, r.stderr
        guarantees.tick("faults injected")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if expect is None:
                with pytest.raises(FormatVersionError, match="no meta.json"):
                    V0Regressor.load(path, encoder=FakeEncoder())
            else:
                back = V0Regressor.load(path, encoder=FakeEncoder())
                np.testing.assert_array_equal(back.predict(make_log()), model.predict(make_log()))
        said = " ".join(str(w.message) for w in caught if issubclass(w.category, V0liteWarning))
        assert (expect or "removed") in said, said
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(f".new-{step}.")]


def test_folder_format_names_the_format_or_none(tmp_path):
    from v0lite.persist import ROUTER_FORMAT, folder_format

    assert folder_format(tmp_path / "absent") is None
    (tmp_path / "meta.json").write_text('{"format": "v0lite-router", "format_version": 1}')
    assert folder_format(tmp_path) == ROUTER_FORMAT
    for text in ("{not json", "[1, 2]", '{"format": 3}', ""):
        (tmp_path / "meta.json").write_text(text)
        assert folder_format(tmp_path) is None


def _router(make_model):
    from v0lite.routing import Router

    log = make_log(steps=False)
    return Router(make_model().fit(log), embedder=FakeEncoder(), k=2, cost_model="unit").fit(log)


@pytest.mark.parametrize("kind", ["model", "router"])
def test_a_save_through_a_symlinked_folder_replaces_its_target_and_keeps_the_link(tmp_path, make_model, kind):
    """`save("link")`, link -> real/m: the target gets the new folder atomically, the link stays a link,
    nothing is left beside either (a leftover would make the next load warn of an interrupted save)."""
    import warnings

    from v0lite.routing import Router

    def obj(prior_head: bool):
        if kind == "model":
            return make_model(head="prior" if prior_head else "knn").fit(make_log())
        r = _router(make_model)
        return r if not prior_head else r.set_params(k=3).fit(make_log())

    (tmp_path / "real").mkdir()
    obj(False).save(tmp_path / "real" / "m")
    os.symlink("real/m", tmp_path / "link")
    new = obj(True)
    new.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and os.readlink(tmp_path / "link") == "real/m"
    meta = json.loads((tmp_path / "real" / "m" / "meta.json").read_text())
    if kind == "model":
        assert meta["head"]["name"] == "prior"  # the target holds the NEW model
    else:
        assert meta["params"]["k"] == 3
    hidden = [p.name for d in (tmp_path, tmp_path / "real") for p in d.iterdir() if p.name.startswith(".")]
    assert not hidden, hidden
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "interrupted save" warning
        if kind == "model":
            back = V0Regressor.load(tmp_path / "link", encoder=FakeEncoder())
            assert back.head == "prior"
        else:
            back = Router.load(tmp_path / "link", embedder=FakeEncoder())
            assert back.k == 3


def test_a_save_through_a_dangling_symlink_creates_its_target(tmp_path, make_model):
    os.symlink("real/m", tmp_path / "link")
    make_model().fit(make_log()).save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "m" / "meta.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
