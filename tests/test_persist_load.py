"""Loading a model folder is total: file-system damage (a FIFO, a folder where a file belongs), JSON the parser
refuses beyond syntax, and values edited on purpose (checksums recomputed) fail at load, clearly and at once."""

from __future__ import annotations

import json
import os
import re
import threading

import numpy as np
import pytest

from tests.conftest import FakeEncoder, make_log
from tests.test_persist import _reseal, _set
from v0lite.estimator import V0Regressor
from v0lite.exceptions import FormatVersionError
from v0lite.persist import check_save_target, folder_format


@pytest.fixture
def saved(tmp_path, make_model):
    path = tmp_path / "model"
    make_model(head="knn").fit(make_log()).save(path)
    return path


def _load_within(path, seconds=30):
    """``V0Regressor.load(path)`` in a thread: (the model or the exception, whether it returned in time)."""
    out = {}

    def run():
        try:
            out["v"] = V0Regressor.load(path, encoder=FakeEncoder())
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out["v"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return out.get("v"), not t.is_alive()


def test_a_fifo_named_meta_json_fails_at_once(saved, guarantees):
    """A FIFO as meta.json blocked the loader (and a save's target check) forever, waiting for a writer."""
    (saved / "meta.json").unlink()
    os.mkfifo(saved / "meta.json")
    got, returned = _load_within(saved)
    assert returned, "V0Regressor.load hung on a FIFO named meta.json"
    assert (
        isinstance(got, FormatVersionError)
        and "meta.json: corrupt JSON (meta.json is a FIFO, not a file)" in str(got)
        and "Fix: re-save" in str(got)
    )
    assert folder_format(saved) is None
    with pytest.raises(Exception, match="holds files v0lite did not write"):
        check_save_target(saved)
    guarantees.tick("corruptions detected")


def test_an_unlisted_texts_json_is_never_read(saved):
    """texts.json was read whenever present, though meta.json did not list it (never checksummed): a FIFO hung
    the load and a stray file failed it. Every v0lite save lists the texts.json it writes."""
    os.mkfifo(saved / "texts.json")
    got, returned = _load_within(saved)
    assert returned and isinstance(got, V0Regressor) and got.index_.texts is None
    (saved / "texts.json").unlink()
    (saved / "texts.json").write_text("not json")
    got, _ = _load_within(saved)
    assert isinstance(got, V0Regressor)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"format": "v0lite-model", "format_version": ' + "1" * 5000 + "}", "integer string conversion"),
    ],
    ids=["deep-nesting", "5000-digit-int"],
)
def test_json_the_parser_refuses_beyond_syntax_is_corrupt_json(saved, guarantees, text, why):
    """RecursionError and the integer-length ValueError are not JSONDecodeError: they escaped as tracebacks."""
    (saved / "meta.json").write_text(text)
    with pytest.raises(FormatVersionError, match=rf"meta.json: corrupt JSON \(.*{why}.*Fix: re-save the model"):
        V0Regressor.load(saved, encoder=FakeEncoder())
    assert folder_format(saved) is None
    guarantees.tick("corruptions detected")


def test_a_folder_named_meta_json_is_the_folders_error(saved):
    (saved / "meta.json").unlink()
    (saved / "meta.json").mkdir()
    with pytest.raises(
        FormatVersionError,
        match=r"meta.json: corrupt JSON \(meta.json is a folder, not a file\).*Fix: re-save the model",
    ):
        V0Regressor.load(saved, encoder=FakeEncoder())


def _edit_head_arrays(path, fn):
    from v0lite._io import load_arrays, save_arrays

    (f,) = sorted((path / "head").glob("*.safetensors"))
    a = load_arrays(f)
    fn(a)
    save_arrays(f, a)
    _reseal(path)


def test_nan_weights_fail_at_load(tmp_path, make_model, guarantees):
    """smoke_predict refused infinities but not NaN: NaN weights loaded and failed later, blaming head_params."""
    path = tmp_path / "m"
    make_model(head="linear").fit(make_log()).save(path)
    _edit_head_arrays(path, lambda a: [a.__setitem__(k, v * np.nan) for k, v in list(a.items()) if v.dtype.kind == "f"])
    with pytest.raises(FormatVersionError, match=r"'linear' head cannot be loaded.*not finite in \[0, 1\].*Fix"):
        V0Regressor.load(path, encoder=FakeEncoder())
    guarantees.tick("corruptions detected")


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (_set("head", "meta", "params", "k", 0), r"'knn' head's saved parameters are not valid.*'k'.*got 0"),
        (_set("head", "meta", "params", "temperature", -1.0), r"saved parameters are not valid.*'temperature'"),
        (_set("params", "head_params", {"k": 0}), r"'params.head_params': head_params\['k'\].*got 0"),
    ],
    ids=["head-k-0", "head-temperature", "params-head-params"],
)
def test_saved_head_parameters_get_the_check_fit_runs(saved, guarantees, edit, pattern):
    """A knn k of 0 loaded and was clamped to 1 at every predict, silently."""
    _reseal(saved, edit)
    with pytest.raises(FormatVersionError, match=pattern + r".*Fix: re-save the model"):
        V0Regressor.load(saved, encoder=FakeEncoder())
    guarantees.tick("corruptions detected")


def test_emb_cut_narrower_fails_at_load_not_blaming_the_encoder(saved, guarantees):
    """emb cut from 64 to 32 wide (resealed) loaded; the first predict then blamed the encoder."""
    assert json.loads((saved / "meta.json").read_text())["emb_dim"] == 64
    _reseal(saved, arrays_edit=lambda a: a.__setitem__("emb", np.ascontiguousarray(a["emb"][:, :32])))
    with pytest.raises(FormatVersionError, match=r"emb is 32 wide, but the model was saved with 64-wide.*Fix: re-save"):
        V0Regressor.load(saved, encoder=FakeEncoder())
    guarantees.tick("corruptions detected")


def test_a_folder_saved_without_emb_dim_still_loads(saved):
    """Folders saved before meta.json recorded emb_dim load as before."""
    _reseal(saved, lambda m: m.pop("emb_dim"))
    assert V0Regressor.load(saved, encoder=FakeEncoder()).index_.dim == 64


def test_the_outcome_stores_folder_check_does_not_block_on_a_fifo(tmp_path):
    """The serve store's --data-dir check read meta.json too: a FIFO there blocked `v0lite serve` at start."""
    from v0lite.exceptions import DataError
    from v0lite.serve._store import check_store_dir

    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "meta.json")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("e", pytest.raises(DataError, check_store_dir, tmp_path / "d")))
    t.daemon = True
    t.start()
    t.join(30)
    assert not t.is_alive(), "check_store_dir hung on a FIFO named meta.json"
    assert "holds files v0lite did not write (meta.json)" in str(out["e"].value)


def test_a_listed_file_replaced_by_a_symlink_is_named_by_the_save_check(saved, tmp_path, guarantees):
    """A save replaces the whole folder: a listed name that is now a symlink points at a file v0lite did not
    write (here the user's), so the save is refused naming it, and the file it points at is kept."""
    from v0lite.exceptions import DataError

    listed = sorted(json.loads((saved / "meta.json").read_text())["files"])[0]
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's\n")
    (saved / listed).unlink()
    (saved / listed).symlink_to(precious)
    with pytest.raises(DataError, match=rf"holds files v0lite did not write \({re.escape(listed)}\)"):
        check_save_target(saved)
    assert precious.read_text() == "the user's\n"
    guarantees.tick("bad-input cases tried")
