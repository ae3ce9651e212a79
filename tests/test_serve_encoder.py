"""The service and its router's encoder folder: a moved folder is refused at start-up in one line (and
taken back with --encoder); an encoder changed while serving is the server's state (503), not the request's."""

from __future__ import annotations

import httpx

from tests.serve_util import free_port, serve_in_thread, tiny_router
from tests.test_encoder_paths import encoder_folder
from v0lite.cli import main
from v0lite.exceptions import EncoderMismatchError
from v0lite.serve import create_app


def test_a_moved_encoder_folder_is_refused_at_start_up_and_taken_with_encoder(tmp_path, fake_minilm, capsys):
    import pytest

    enc = encoder_folder(tmp_path / "enc")
    tiny_router(encoder=str(enc)).save(tmp_path / "r")
    enc.rename(tmp_path / "enc_moved")
    with pytest.raises(EncoderMismatchError, match="is not there"):
        create_app(tmp_path / "r")  # before any lifespan: no traceback of a failed start-up
    app = create_app(tmp_path / "r", encoder=str(tmp_path / "enc_moved"))
    assert app.state.v0lite.router.value_model.encoder == str(tmp_path / "enc_moved")
    capsys.readouterr()
    assert main(["serve", "--router", str(tmp_path / "r"), "--port", str(free_port()), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("v0lite serve: error: the encoder folder")
    assert "--encoder PATH" in err[0] and "Traceback" not in err[0]


def test_replicas_take_the_moved_folder_too(tmp_path, fake_minilm, monkeypatch):
    """Ray Serve replicas build their app from ray_app's arguments: --encoder reaches them (checked on the
    driver first, as every other argument is), and without it the moved folder is refused there."""
    import pytest

    import v0lite.serve as serve_pkg
    from v0lite.serve import ray_app

    enc = encoder_folder(tmp_path / "enc")
    tiny_router(encoder=str(enc)).save(tmp_path / "r")
    enc.rename(tmp_path / "enc_moved")
    with pytest.raises(EncoderMismatchError, match="is not there"):
        ray_app(tmp_path / "r", num_replicas=1)
    app = ray_app(tmp_path / "r", num_replicas=1, encoder=tmp_path / "enc_moved")  # built, not started
    assert app is not None
    seen = {}
    monkeypatch.setattr(serve_pkg, "run_ray", lambda router, **kw: seen.update(kw))
    args = ["serve", "--router", str(tmp_path / "r"), "--replicas", "2", "--encoder", str(tmp_path / "enc_moved")]
    import signal

    before = signal.getsignal(signal.SIGTERM)  # the command sets its own SIGTERM handler: not for pytest's process
    try:
        assert main([*args, "--quiet"]) == 0 and seen["encoder"] == str(tmp_path / "enc_moved")
    finally:
        signal.signal(signal.SIGTERM, before)


def test_an_encoder_changed_while_serving_is_a_503_for_the_operator(tmp_path, fake_minilm):
    enc = encoder_folder(tmp_path / "enc")
    app = create_app(tiny_router(encoder=str(enc)))
    with serve_in_thread(app) as base:
        c = httpx.Client(base_url=base, timeout=20)
        assert c.post("/v1/route", json={"prompt": "add the numbers case 1"}).status_code == 200
        encoder_folder(enc, b"weights v2, fine-tuned in place")
        r = c.post("/v1/route", json={"prompt": "a prompt never seen 2"})
        err = r.json()["error"]
        assert r.status_code == 503 and err["type"] == "server_error" and err["code"] == "encoder_mismatch"
        assert "--encoder PATH" in err["message"] and "encoder=<path>" not in err["message"]


def test_an_encoder_folder_that_no_longer_loads_is_a_503_for_the_operator(tmp_path, fake_minilm, monkeypatch):
    """A folder damaged while serving (sentence-transformers cannot load it: EncoderLoadError) is the
    server's state too: 503 encoder_unavailable, not a 422 telling the client to pass encoder=<path>."""
    import v0lite.embed as embed
    from v0lite.exceptions import EncoderLoadError

    enc = encoder_folder(tmp_path / "enc")
    app = create_app(tiny_router(encoder=str(enc)))
    with serve_in_thread(app) as base:
        c = httpx.Client(base_url=base, timeout=20)
        assert c.post("/v1/route", json={"prompt": "add the numbers case 1"}).status_code == 200

        def broken(path, device, **progress):
            raise EncoderLoadError(f"encoder folder {path!r} holds no sentence-transformers model (bad). Fix: x.")

        monkeypatch.setattr(embed, "_load_sentence_transformer", broken)
        r = c.post("/v1/route", json={"prompt": "a prompt never seen 3"})
        err = r.json()["error"]
        assert r.status_code == 503 and err["code"] == "encoder_unavailable", r.text
        assert err["type"] == "server_error"


def test_a_folder_sentence_transformers_cannot_load_is_an_encoder_load_error(tmp_path):
    """The real loader (no stand-in): a folder whose config.json is not JSON raises EncoderLoadError."""
    import pytest

    from v0lite.embed import _load_sentence_transformer
    from v0lite.exceptions import EncoderLoadError

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{ not json")
    (bad / "modules.json").write_text("[ not json")
    with pytest.raises(EncoderLoadError, match="bad"):
        _load_sentence_transformer(str(bad), None)
