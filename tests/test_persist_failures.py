"""A save the disk refuses (full, read-only) names the folder, the file, the reason and the fix, and changes
nothing; loading a folder of the other kind, or a damaged one, says what it is and how to save it again."""

from __future__ import annotations

import errno
import os
import re
import types
from pathlib import Path

import pytest

from tests.conftest import FakeEncoder, make_log
from tests.test_persist import _digests, _reseal, _router
from v0lite.cli import main
from v0lite.estimator import V0Regressor
from v0lite.exceptions import DataError, FormatVersionError, V0liteError, V0liteWarning

NO_SPACE = "No space left on device"


def _safetensors_error():
    """The error safetensors raises on a full disk (its text, as a real full tmpfs gave it)."""
    from safetensors import SafetensorError

    return SafetensorError(f"Error while serializing: I/O error: {NO_SPACE} (os error 28)")


FULL_DISK = {
    "oserror": lambda: OSError(errno.ENOSPC, NO_SPACE),
    "safetensors": _safetensors_error,
}


@pytest.fixture(params=sorted(FULL_DISK))
def full_disk(request, monkeypatch):
    """Call it to fill the disk: safetensors' writer then fails on history.safetensors as on a full disk (it
    creates the file, writes part of it, then raises OSError(ENOSPC) or SafetensorError "... (os error 28)")."""
    import safetensors.numpy

    real = safetensors.numpy.save_file

    def save_file(tensors, filename, metadata=None):
        if Path(filename).name != "history.safetensors":
            return real(tensors, filename, metadata)
        Path(filename).write_bytes(b"\0" * 16)
        raise FULL_DISK[request.param]()

    return lambda: monkeypatch.setattr(safetensors.numpy, "save_file", save_file)


@pytest.fixture
def saved(tmp_path, make_model):
    path = tmp_path / "model"
    make_model().fit(make_log()).save(path)
    return path


# --- a write the disk refuses -------------------------------------------------------------------------
@pytest.mark.parametrize("over", [True, False], ids=["over-a-folder", "new-folder"])
def test_a_full_disk_mid_save_names_folder_file_reason_and_fix(tmp_path, make_model, full_disk, over, guarantees):
    """A full disk inside the fill step was a raw OSError/SafetensorError traceback naming neither the folder
    nor a fix; the old folder stays byte-identical and the temporary folder is removed."""
    path = tmp_path / "model"
    model = make_model().fit(make_log())
    if over:
        make_model(head="prior").fit(make_log(seed=1)).save(path)
        before = _digests(path)
    full_disk()
    with pytest.raises(V0liteError) as got:
        model.save(path)
    text = str(got.value)
    assert text.startswith(f"{path}: the save failed while writing {path / 'history.safetensors'} ({NO_SPACE})")
    assert ("the folder there is unchanged" if over else "nothing was saved") in text
    assert "Fix: free space on that disk" in text and "save to another path" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == (["model"] if over else [])  # no temp folder left
    if over:
        assert _digests(path) == before
    guarantees.tick("faults injected")


def test_a_full_disk_in_fit_is_one_error_line_naming_model_dir(files, capsys, fake_minilm, full_disk):
    """`v0lite fit --model-dir` on a full disk printed a traceback; now one `error:` line whose fix names the flag."""
    tmp, hist, _ = files
    full_disk()
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("v0lite fit: error: ") and NO_SPACE in err and str(tmp / "m" / "history.safetensors") in err
    assert "Fix: free space on that disk (or make it writable), or choose another --model-dir." in err
    assert not (tmp / "m").exists() and not [p for p in tmp.iterdir() if p.name.startswith(".m.")]


def _safetensors_bug():
    from safetensors import SafetensorError

    return SafetensorError("Error while serializing: invalid dtype")


NOT_THE_DISK = {  # each was "the save failed ... Fix: free space", its real cause hidden
    "bug": lambda: KeyError("bug"),
    "no-such-folder": lambda: FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "x/history.safetensors"),
    "a-folder-there": lambda: IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), "history.safetensors"),
    "safetensors-dtype": _safetensors_bug,
    "phrase-only": lambda: RuntimeError("Operation not permitted on a frozen graph"),
}


@pytest.mark.parametrize("error", sorted(NOT_THE_DISK))
def test_an_error_that_is_not_the_disks_is_raised_as_it_is(saved, monkeypatch, make_model, error):
    """Only a write the disk refused becomes the save's error: any other error inside fill (a bug, a missing
    folder, a library's own refusal that merely quotes an errno phrase) keeps its own type and text."""
    import safetensors.numpy

    raised = NOT_THE_DISK[error]()
    monkeypatch.setattr(safetensors.numpy, "save_file", lambda *a, **k: (_ for _ in ()).throw(raised))
    before = _digests(saved)
    with pytest.raises(type(raised)) as got:
        make_model().fit(make_log()).save(saved)
    assert got.value is raised and not isinstance(got.value, V0liteError)
    assert _digests(saved) == before


def test_a_save_that_cannot_put_the_old_folder_back_names_where_it_is(saved, monkeypatch, make_model):
    """Without an atomic swap the old folder is moved aside first; when the new one cannot take its place and
    the old one cannot be put back either, the error said "nothing was saved", with the old folder hidden
    beside the path: it names where the folder is, and the next load puts it back."""
    import v0lite.persist as persist

    real_replace, before = os.replace, _digests(saved)

    def replace(src, dst):
        if Path(dst) == saved:  # the new folder does not fit; putting the old one back fails too
            code = errno.ENOSPC if Path(src).name.endswith(".tmp") else errno.EIO
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst)

    new = make_model(head="prior").fit(make_log(seed=2))
    monkeypatch.setattr(persist, "_exchange", lambda a, b: False)  # a file system without an atomic swap
    monkeypatch.setattr(persist.os, "replace", replace)
    with pytest.raises(V0liteError) as got:
        new.save(saved)
    monkeypatch.undo()
    old, text = saved.with_name(f".{saved.name}.old-{os.getpid()}"), str(got.value)
    assert text.startswith(f"{saved}: the save failed while moving it into place ({os.strerror(errno.EIO)})")
    assert f"; the folder there is now {old} (the next load or save of {saved} puts it back). Fix:" in text
    assert "nothing was saved" not in text and not saved.exists() and _digests(old) == before
    with pytest.warns(V0liteWarning, match=re.escape(f"restored {saved} from {old.name}")):
        assert V0Regressor.load(saved, encoder=FakeEncoder()).head != "prior"  # the old model, back in place
    assert _digests(saved) == before and not old.exists()


# --- a folder that is read-only for us ----------------------------------------------------------------
@pytest.mark.parametrize("stuck", [".", "head"], ids=["the-folder", "a-folder-inside"])
def test_saving_over_a_read_only_folder_is_refused_before_any_work(saved, monkeypatch, make_model, stuck):
    """The save succeeded but could not remove the old folder, and every later load then warned of an
    interrupted save. Tests run as root (chmod does not block writes): os.access says the folder is read-only."""
    import v0lite.persist as persist

    ro, real_access = os.path.normpath(saved / stuck), os.access
    monkeypatch.setattr(persist.os, "access", lambda p, mode, **kw: os.fspath(p) != ro and real_access(p, mode, **kw))
    before, beside = _digests(saved), sorted(saved.parent.iterdir())
    which = "is read-only" if stuck == "." else f"holds {ro}, which is read-only"
    with pytest.raises(DataError) as got:
        make_model(head="prior").fit(make_log(seed=2)).save(saved)
    assert str(got.value) == (
        f"{saved}: {which}, so the folder this save replaces could not be removed. "
        f"Fix: make it writable (chmod -R u+w {saved}), or save to another path."
    )
    assert _digests(saved) == before and sorted(saved.parent.iterdir()) == beside  # nothing was written


def test_fit_refuses_a_read_only_model_dir_before_fitting(files, monkeypatch, capsys, fake_minilm):
    import v0lite.persist as persist

    tmp, hist, _ = files
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 0
    calls, real_access = fake_minilm.calls, os.access
    monkeypatch.setattr(
        persist.os, "access", lambda p, mode, **kw: os.fspath(p) != str(tmp / "m") and real_access(p, mode, **kw)
    )
    capsys.readouterr()
    assert main(["fit", str(hist), "--model-dir", str(tmp / "m"), "--head", "knn"]) == 1
    err = capsys.readouterr().err
    assert f"--model-dir {tmp / 'm'}: is read-only" in err and f"chmod -R u+w {tmp / 'm'}" in err
    assert "choose another --model-dir" in err and fake_minilm.calls == calls  # refused before embedding


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_an_old_folder_that_cannot_be_removed_is_named_in_a_warning(saved, monkeypatch, make_model, swap):
    """The fallback when the up-front check passes but the removal still fails: the save warns naming the
    leftover and the reason (it was removed with errors ignored, silently)."""
    import v0lite._io as _io
    import v0lite.persist as persist

    def rmtree(p, ignore_errors=False):  # a read-only folder: nothing of it goes
        if not ignore_errors:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))

    monkeypatch.setattr(_io, "shutil", types.SimpleNamespace(rmtree=rmtree))
    if swap == "two-renames":  # a file system without an atomic swap
        monkeypatch.setattr(persist, "_exchange", lambda a, b: False)
    new = make_model(head="prior").fit(make_log(seed=2))
    with pytest.warns(V0liteWarning) as got:
        new.save(saved)
    monkeypatch.undo()
    (left,) = [p for p in saved.parent.iterdir() if p.name != "model"]
    (w,) = [str(x.message) for x in got]
    assert w.startswith(f"saved {saved}, but the folder it replaced, now {left}, could not be removed (Permission")
    assert f"Fix: remove it by hand (chmod -R u+w {left}, then delete it)." in w
    with pytest.warns(V0liteWarning) as later:  # the next load removes it, not blaming an interrupted save
        assert V0Regressor.load(saved, encoder=FakeEncoder()).head == "prior"  # the new folder is in place
    (w,) = [str(x.message) for x in later]
    assert f"removed {left.name} beside {saved}, left by an earlier save (interrupted, or unable to remove" in w
    assert not left.exists()


# --- a folder of the other kind -----------------------------------------------------------------------
def test_loading_the_other_kind_of_folder_says_what_it_is_and_how_to_load_it(saved, tmp_path, make_model):
    """Router.load(model folder) said only "not a v0lite router (format='v0lite-model')", with no fix."""
    from v0lite.routing import Router

    _router(make_model).save(tmp_path / "router")
    with pytest.raises(FormatVersionError, match=r"a v0lite model folder .*not a router\. Fix: load it with V0Regr"):
        Router.load(saved, embedder=FakeEncoder())
    with pytest.raises(FormatVersionError, match=r"a v0lite router folder .*not a model\. Fix: load it with Router"):
        V0Regressor.load(tmp_path / "router", encoder=FakeEncoder())


# --- load errors name how to save again ---------------------------------------------------------------
MODEL_FIX = r"Fix: re-save the model: refit it \(`v0lite fit HISTORY --model-dir DIR`, or V0Regressor\(\.\.\.\)"


def _flip(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))


DAMAGE = {
    "checksum": (lambda p: _flip(p / "history.safetensors"), r"history.safetensors: missing or corrupt"),
    "missing": (lambda p: (p / "history.safetensors").unlink(), r"history.safetensors: missing or corrupt"),
    "corrupt-meta": (lambda p: (p / "meta.json").write_text("{oops"), r"meta.json: corrupt JSON"),
    "no-version": (lambda p: _reseal(p, lambda m: m.pop("format_version")), r"'format_version' is missing\)"),
    "null-version": (
        lambda p: _reseal(p, lambda m: m.update(format_version=None)),
        r"'format_version' is null, not an integer\)",
    ),
    "text-version": (
        lambda p: _reseal(p, lambda m: m.update(format_version="1")),
        r"'format_version' is \"1\", not an integer\)",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_model_folder_says_how_to_refit_it(saved, damage, guarantees):
    """The fix was "re-save the model", naming no command; a missing or null format_version read "format
    version None is not supported ... upgrade v0lite"."""
    harm, what = DAMAGE[damage]
    harm(saved)
    with pytest.raises(FormatVersionError, match=what + r".*" + MODEL_FIX) as got:
        V0Regressor.load(saved, encoder=FakeEncoder())
    assert str(got.value).count("Fix:") == 1 and "upgrade" not in str(got.value)
    guarantees.tick("corruptions detected")
