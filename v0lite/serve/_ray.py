"""The service as a Ray Serve application: N replicas of the same app over one outcome store.

Each replica builds its own app at init, from the arguments (a router folder, a store folder or
a store factory, the upstreams), through Ray Serve's late-bound ingress: the deployment class
only stores its arguments and, in ``__serve_build_asgi_app__``, returns
:func:`v0lite.serve.create_app`. Ray Serve runs the app's ASGI lifespan on the replica, so the
replica warms its encoder, replays the store and starts its refresh task exactly as
``v0lite serve`` does. Feedback posted to any replica lands in the one store; every replica's
refresh task reads it from there, so it reaches every replica within the refresh delay.

Ray is imported inside these functions (``pip install 'v0lite[ray]'``, with the ``serve``
extra). What runs where: ``docs/serve.md``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..exceptions import DataError

__all__ = ["ray_app", "run_ray", "REPLICA_HEADER"]

REPLICA_HEADER = "x-v0lite-replica"  # which replica answered: Ray Serve's replica id


def _serve():
    from .._extras import require

    require("ray", "ray", "v0lite serve on Ray Serve")
    serve = require("ray.serve", "ray", "v0lite serve on Ray Serve")
    from ._preflight import require_serve

    require_serve()
    return serve


class _ReplicaHeader:
    """Pure ASGI middleware: every answer names the replica that gave it (``x-v0lite-replica``)."""

    def __init__(self, app, *, replica: str):
        self.app, self.value = app, replica.encode("latin-1")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (REPLICA_HEADER.encode(), self.value)]}
            await send(message)

        await self.app(scope, receive, tagged)


def _deployment_class(serve):
    """The deployment class, made on first use (its decorators need Ray imported)."""
    try:
        ingress = serve.ingress()  # late-bound: the replica calls __serve_build_asgi_app__ at init
    except TypeError as exc:
        import ray

        raise DataError(
            f"Ray {ray.__version__} has no late-bound ingress (serve.ingress() without an app), which the "
            "v0lite deployment needs to build its app on each replica. Fix: pip install -U 'v0lite[ray]' "
            "(tested with Ray 2.60)."
        ) from exc

    @ingress
    class V0liteService:
        """One replica: builds the app from the arguments; the app does everything else."""

        def __init__(self, kwargs: dict, store_factory=None):
            self._kwargs, self._store_factory = kwargs, store_factory

        def __serve_build_asgi_app__(self):
            _serve()  # a node without the extras fails with the install line
            from ._app import create_app

            kw = dict(self._kwargs)
            if self._store_factory is not None:
                kw["store"] = self._store_factory()  # each replica opens its own connection
            app = create_app(**kw)
            ctx = serve.get_replica_context()
            app.add_middleware(_ReplicaHeader, replica=f"{ctx.replica_id.unique_id}/{os.getpid()}")
            return app

    return V0liteService


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_drain_seconds(drain_seconds) -> float:
    """``drain_seconds`` (how long a stopping server waits for its requests in flight) as a float, or a
    :class:`DataError`: a finite number in 0..86,400. ``v0lite serve --drain-seconds`` (one process or Ray
    replicas) and :func:`ray_app` share this one check; the CLI names its flag in place of the keyword."""
    if not (
        isinstance(drain_seconds, (int, float))
        and not isinstance(drain_seconds, bool)
        and math.isfinite(drain_seconds)
        and 0 <= drain_seconds <= 86_400
    ):
        raise DataError(
            f"drain_seconds={drain_seconds!r}: must be a finite number >= 0 and <= 86,400 (one day: how long "
            "SIGTERM waits for requests in flight). Fix: pass drain_seconds=30 (0: stop at once)."
        )
    return float(drain_seconds)


def _paths(value):
    """A path as an absolute string (a replica's working folder is not the driver's); other values as given."""
    if isinstance(value, (str, Path)) or hasattr(value, "__fspath__"):
        return str(Path(value).absolute())
    return value


def ray_app(
    router,
    *,
    data_dir=None,
    store=None,
    upstreams=None,
    api_keys=None,
    pool=None,
    limits=None,
    cors_origins=(),
    knob=None,
    encoder=None,
    num_replicas: int = 2,
    max_ongoing_requests: int | None = None,
    ray_actor_options: dict | None = None,
    drain_seconds: float | None = None,
    name: str = "v0lite",
):
    """The service as a bound Ray Serve application (``serve.run`` it, or use :func:`run_ray`).

    Every input is checked here, on the driver, by building the app once (the router loads,
    the pool and upstreams are checked); each replica then builds its own from the same
    arguments at init.

    Parameters
    ----------
    router : path
        A router folder (``v0lite route-eval --save-router`` or :meth:`Router.save`), readable
        on every node (shared storage on a cluster).
    data_dir : path, optional
        The SQLite outcome store's folder, shared by the replicas of one machine. On a cluster,
        pass ``store`` instead.
    store : callable, optional
        A function (picklable by Ray, e.g. a module-level one) returning an
        :class:`~v0lite.serve.OutcomeStore`; each replica calls it once, so each holds its own
        connection to the one database. Overrides ``data_dir``.
    upstreams, api_keys, pool, limits, cors_origins, knob, encoder
        As :func:`v0lite.serve.create_app` (paths are read on each replica; ``encoder``: the new
        location of the router's encoder folder when it has moved, as ``v0lite serve --encoder``).
    num_replicas : int
        Replicas of the app (default 2).
    max_ongoing_requests : int, optional
        Requests one replica takes at once (Ray Serve queues the rest); default
        ``limits.max_batch``, so a replica can fill one micro-batch.
    ray_actor_options : dict, optional
        Ray Serve's options for each replica's actor (``num_cpus``, ``runtime_env``, ...).
    drain_seconds : float, optional
        How long a replica being stopped waits for its requests in flight (Ray Serve's
        ``graceful_shutdown_timeout_s``; ``v0lite serve --drain-seconds``); default Ray Serve's (20 s).
    name : str
        The deployment's name.

    Returns
    -------
    ray.serve.Application
    """
    serve = _serve()
    from ._app import create_app
    from ._state import Limits

    if not isinstance(num_replicas, int) or isinstance(num_replicas, bool) or num_replicas < 1:
        raise DataError(f"num_replicas={num_replicas!r}: must be an integer >= 1 (--replicas N).")
    if not (isinstance(router, (str, Path)) or hasattr(router, "__fspath__")):
        raise DataError(
            f"router is a {type(router).__name__}: Ray Serve replicas load the router from a folder. "
            "Fix: save it with Router.save(DIR) and pass DIR."
        )
    if store is not None and not callable(store):
        raise DataError(
            f"store is a {type(store).__name__}: each replica must open its own connection. Fix: pass a function "
            "that returns the store (e.g. store=lambda: MyStore(url)), or data_dir=DIR on one machine."
        )
    if drain_seconds is not None:
        check_drain_seconds(drain_seconds)
    limits = (limits or Limits()).check()
    given = dict(
        router=router,
        upstreams=upstreams,
        data_dir=None if store is not None else data_dir,
        api_keys=api_keys,
        pool=None if pool is None else list(pool),
        limits=limits,
        cors_origins=list(cors_origins or ()),
        knob=knob,
        encoder=encoder,
    )
    # the checks, on the driver, with the paths as the caller typed them (so its errors name them so); no
    # lifespan, nothing started. The replicas get them absolute: a replica's working folder is not the driver's
    create_app(**{**given, "data_dir": None})
    kwargs = {k: _paths(v) for k, v in given.items()}
    if kwargs["data_dir"] is not None:
        from ._store import SqliteStore

        SqliteStore(given["data_dir"]).close()  # create it (WAL) once, before the replicas open it together
    deployment = serve.deployment(
        _deployment_class(serve),
        name=name,
        num_replicas=num_replicas,
        max_ongoing_requests=max_ongoing_requests or limits.max_batch,
        ray_actor_options=ray_actor_options,
        # stopping: a replica waits this long for its requests in flight (the proxy still delivers their answers)
        **({} if drain_seconds is None else {"graceful_shutdown_timeout_s": float(drain_seconds)}),
    )
    return deployment.bind(kwargs, store)


def run_ray(
    router,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    app_name: str = "v0lite",
    route_prefix: str = "/",
    blocking: bool = False,
    quiet: bool = False,
    on_checked=None,
    **kwargs,
):
    """Start the service on Ray Serve: Ray (if not started), its HTTP proxy on ``host:port``, the replicas.

    Parameters
    ----------
    router : path
        A router folder (see :func:`ray_app`).
    host, port
        The address of Ray Serve's HTTP proxy (one per node); a non-loopback ``host`` needs
        ``api_keys``.
    address : str, optional
        A Ray cluster's address for ``ray.init`` when Ray is not started yet (default: a local
        Ray on this machine).
    app_name, route_prefix
        The Ray Serve application's name and route prefix.
    blocking : bool
        Serve until interrupted (Ctrl-C; SIGTERM too when called from the main thread and this call
        started Ray), then delete the application (and stop Ray if this call started it), as
        ``v0lite serve --replicas`` does. SIGTERM's handler is put back once Ray is stopped; on the
        caller's Ray it is left alone (Ray's own). The application is deleted before Ray Serve stops, so
        the replicas drain behind a live proxy: requests in flight get their answers (up to
        ``drain_seconds``).
    quiet : bool
        Ray's and Ray Serve's log lines on this process's terminal: warnings only (``v0lite serve --quiet``).
    on_checked : callable, optional
        Called with no argument once every input passed :func:`ray_app`'s checks, before Ray starts
        (``v0lite serve`` prints its start-up line there, so a refused input announces no URL).
    **kwargs
        :func:`ray_app`'s parameters (``data_dir``, ``store``, ``num_replicas``, ...).

    Returns
    -------
    ray.serve.handle.DeploymentHandle
        The ingress's handle, once every replica is up (warmed and replayed).
    """
    serve = _serve()
    import ray

    from ._app import check_bind

    check_bind(host, bool(kwargs.get("api_keys")))
    app = ray_app(router, **kwargs)
    if on_checked is not None:
        on_checked()
    started_ray = not ray.is_initialized()
    logs, local = {}, {}
    if quiet:  # Ray's driver-side lines ("Started a local Ray instance", "Started Serve", ...) are INFO
        import logging

        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        logs = {"logging_config": {"log_level": "WARNING"}}  # the controller's, the proxy's, the replicas' logs
        local["logging_level"] = logging.WARNING  # the driver's "ray" logger, which ray.init sets up
    if started_ray:
        if address is None and _loopback(host):  # Ray's node address; its processes' ports still listen on all
            local["_node_ip_address"] = "127.0.0.1"  # interfaces (Ray 2.60 has no setting for that: docs/serve.md)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    serve.start(http_options={"host": host, "port": int(port)}, **logs)
    if not blocking:
        return serve.run(app, name=app_name, route_prefix=route_prefix, **logs)
    import signal
    import time

    handle = None
    # SIGTERM ends the run only on a Ray this call started: ray.init has just put Ray's C++ handler in (which
    # Python cannot see, so it could not be put back); on the caller's Ray it stays, and Ctrl-C stops the run
    previous = _stop_on_sigterm() if started_ray else None
    try:  # an interrupt while the replicas start stops them too
        handle = serve.run(app, name=app_name, route_prefix=route_prefix, **logs)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:  # replicas drain (Ray Serve's graceful shutdown) and their lifespans close the store
        if previous is not None:  # a resent SIGTERM (systemd, Kubernetes) must not cut the drain short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            # delete first: serve.shutdown() alone stops the proxy with the replicas, cutting off the requests
            # in flight; deleted, the replicas drain (up to drain_seconds) while the proxy delivers their answers
            try:
                serve.delete(app_name)
            finally:
                if started_ray:
                    serve.shutdown()
                    ray.shutdown()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return handle


def _stop_on_sigterm():
    """Make SIGTERM end a blocking :func:`run_ray` as Ctrl-C does (the application deleted, Ray stopped).

    Installed after ``ray.init``, which replaces the process's SIGTERM handler with Ray's C++ one: that
    one aborts the process (exit -6), so the replicas were never drained and the local Ray never
    stopped. Returns the handler Python had before (the one to put back once Ray is stopped), or None
    off the main thread, where Python cannot set one.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    return signal.SIG_DFL if previous is None else previous  # None: set outside Python, so not restorable
