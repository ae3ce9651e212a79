"""``v0lite serve``: the router in the request path, as an OpenAI-compatible HTTP service.

* :func:`create_app` -- the FastAPI app (mount it in your own ASGI app, or wrap it with Ray
  Serve's ``@serve.ingress``); ``v0lite serve`` runs it with uvicorn.
* :func:`ray_app` / :func:`run_ray` -- the same app as a Ray Serve application, N replicas over
  one outcome store (the ``ray`` extra).
* :class:`OutcomeStore` -- what the service asks of its outcome store; :class:`SqliteStore` is
  the default (one SQLite file, WAL, ``synchronous=FULL``).

Endpoints, the feedback path and what runs where: ``docs/serve.md``. FastAPI, uvicorn, httpx
and prometheus-client come with the ``serve`` extra and are imported only when an app is built.
"""

from __future__ import annotations

from ._ray import ray_app, run_ray  # Ray itself is imported inside them
from ._state import Limits
from ._store import OutcomeStore, SqliteStore

__all__ = ["create_app", "Limits", "OutcomeStore", "SqliteStore", "ray_app", "run_ray"]


def create_app(
    router,
    *,
    upstreams=None,
    data_dir=None,
    store=None,
    api_keys=None,
    pool=None,
    limits=None,
    cors_origins=(),
    knob=None,
    encoder=None,
):
    """Build the service's FastAPI app; every input is checked before it returns.

    Parameters
    ----------
    router : Router or path
        A fitted :class:`v0lite.routing.Router`, or the folder of one saved by
        ``v0lite route-eval --save-router`` / :meth:`Router.save`.
    upstreams : path or dict, optional
        Pool model -> ``{"base_url", "model", "api_key_env", "price"}`` (``api_key_env`` and
        ``price`` optional). Needed by ``/v1/chat/completions`` only; then every model of the
        pool needs one (narrow the pool with ``pool``).
    data_dir : path, optional
        The outcome store's folder (a :class:`SqliteStore`; empty, new, or an earlier store).
        Without it (and without ``store``), ``/v1/feedback`` answers 503.
    store : OutcomeStore, optional
        Another store (e.g. a server database shared by replicas); overrides ``data_dir``.
    api_keys : path or list of str, optional
        With keys, every endpoint but ``/healthz`` and ``/readyz`` needs
        ``Authorization: Bearer <key>``.
    pool : list of str, optional
        Route among these models only (a subset of the router's pool, or upstream models that
        will join once they have outcomes).
    limits : Limits, optional
        Body and prompt sizes, refresh delay, micro-batch size, wait and queue bound.
    cors_origins : sequence of str
        Origins allowed by CORS; none by default (no CORS headers at all).
    knob : float, optional
        The knob of the router's strategy that the model name ``"v0lite"`` (and ``/v1/route``
        without ``strategy``) routes with: ``lam`` for ``utility``, ``tau`` for ``threshold``,
        ``budget``, ``target`` for ``quality-target``; checked against the strategy's range.
        Default: the strategy's default knob. Required for a router whose strategy has none
        (``budget``, ``quality-target``): without it the app is refused.
    encoder : str, optional
        With ``router`` a folder: its value model's encoder, when the folder it was fitted with
        has moved (checked by its files' fingerprint). A value model whose encoder is not the one
        it was fitted with is refused here (:class:`~v0lite.exceptions.EncoderMismatchError`).

    Returns
    -------
    fastapi.FastAPI
        The app; its state is ``app.state.v0lite``, started and stopped by the app's lifespan.
    """
    from ._preflight import require_serve

    require_serve()
    from ._app import create_app as _create

    return _create(
        router,
        upstreams=upstreams,
        data_dir=data_dir,
        store=store,
        api_keys=api_keys,
        pool=pool,
        limits=limits,
        cors_origins=cors_origins,
        knob=knob,
        encoder=encoder,
    )
