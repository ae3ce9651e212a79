"""CLI: ``v0lite serve`` (the router as an OpenAI-compatible HTTP service; see docs/serve.md)."""

from __future__ import annotations

import sys

from ..exceptions import DataError
from ._common import _FLAGS, ENCODER_MOVED_HELP, add_progress_flags, check_router_dir, encoder_flag, finite_knob

__all__ = ["register"]


def _check_port_free(host: str, port: int) -> int:
    """Refuse a --port another process holds, in flag terms (uvicorn would say only "Errno 98" after the
    store was created); returns the port, or with 0 one free now (--replicas gives it to Ray's proxy, so the
    start-up line can name it). A port taken between this check and the server's bind is the server's to report."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT port is free
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DataError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}; another server may hold "
                "it). Fix: pass another --port (0: any free port), or stop the server holding it."
            ) from None
        return s.getsockname()[1]


def _serve(args) -> int:
    from ..serve import Limits, create_app
    from ..serve._preflight import check_bind, require_serve
    from ..serve._ray import check_drain_seconds

    require_serve()  # first: without the extra nothing below can run (and --replicas needs it on every replica)
    check_bind(args.host, bool(args.api_keys))  # before loading anything
    if not 0 <= args.port <= 65535:
        raise DataError(f"--port {args.port}: not a TCP port. Fix: pass a port in 1..65535 (0: any free port).")
    if args.replicas is not None and args.replicas < 1:  # left out (None): one process, no Ray
        raise DataError(
            f"--replicas {args.replicas}: must be >= 1 (leave it out for one process). Fix: pass --replicas 2, "
            "or leave it out to serve from one process."
        )
    pool = None
    if args.pool is not None:
        pool = [p.strip() for p in args.pool.split(",") if p.strip()]
        if not pool:
            raise DataError("--pool is empty. Fix: pass model names separated by commas, e.g. --pool a,b.")
    try:  # ray_app's own check, for one process too: "drain_seconds=-1.0: ..." -> "--drain-seconds -1.0: ..."
        check_drain_seconds(args.drain_seconds)
    except DataError as exc:  # the fix's drain_seconds=30 is rewritten by cli_text
        raise DataError(f"--drain-seconds {str(exc).partition('=')[2]}") from None
    try:
        limits = Limits(
            max_body_bytes=args.max_body_bytes,
            max_prompt_chars=args.max_prompt_chars,
            refresh_seconds=args.refresh_seconds,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
            max_queue=args.max_queue,
            max_route_prompts=args.max_route_prompts,
            upstream_timeout_s=args.upstream_timeout,
            startup_wait_s=args.startup_wait,
        ).check()
    except DataError as exc:  # "max_body_bytes 0: ..." -> "--max-body-bytes 0: ..." (the fix is rewritten by cli_text)
        name, _, rest = str(exc).partition(" ")
        flags = {**_FLAGS, "max_route_prompts": "--max-route-prompts"}
        rest = rest.replace("pass max_route_prompts=<value>", "pass --max-route-prompts VALUE")
        raise DataError(f"{flags.get(name, name)} {rest}") from None
    check_router_dir(args.router)  # after the flags' own checks; a model folder: named as one, with route's fix
    # before the store is created (and before Ray starts, with --replicas): a taken port leaves nothing behind
    _check_port_free(args.host, args.port)
    if args.replicas is not None:
        return _serve_on_ray(args, pool, limits)
    import uvicorn  # checked by require_serve above

    app = create_app(
        args.router,
        upstreams=args.upstreams,
        data_dir=args.data_dir,
        api_keys=args.api_keys,
        pool=pool,
        limits=limits,
        cors_origins=args.cors_origin or (),
        knob=args.knob,
        encoder=args.encoder,
    )
    state = app.state.v0lite
    if not args.quiet:
        knob = state.knob if state.knob is not None else state.router.strategy_.default_knob
        print(
            f"v0lite serve: pool {state.allowed()}, strategy {state.router.strategy_.name} "
            f"({state.router.strategy_.knob_name} {knob:g}), "
            f"{len(state.upstreams)} upstreams, store {args.data_dir or 'none (feedback off)'}, "
            f"keys {'on' if args.api_keys else 'off'}; http://{args.host}:"
            + (str(args.port) if args.port else "<a free port: uvicorn's line below names it>"),
            file=sys.stderr,
        )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning" if args.quiet else "info",
        access_log=not args.quiet,
        timeout_graceful_shutdown=args.drain_seconds,  # SIGTERM: stop accepting, finish what is in flight
        server_header=False,
    )
    uvicorn.Server(config).run()
    return 0


def _serve_on_ray(args, pool, limits) -> int:
    """``--replicas N``: the same app as N Ray Serve replicas on this machine (Ray's proxy on --host:--port)."""
    from ..serve import run_ray
    from ..serve._ray import _serve as require_ray_serve

    require_ray_serve()  # the ray extra, before the start-up line: without it nothing below can start
    port = args.port or _check_port_free(args.host, 0)  # --port 0: pick it here, so the start-up line names it

    def start_up_line():  # once ray_app's checks passed (upstreams, knob, pool...): a refused input names no URL
        if not args.quiet:
            replicas = f"{args.replicas} Ray Serve replica{'' if args.replicas == 1 else 's'}"
            print(
                f"v0lite serve: {replicas}, store {args.data_dir or 'none (feedback off)'}, "
                f"keys {'on' if args.api_keys else 'off'}; http://{args.host}:{port}",
                file=sys.stderr,
            )

    run_ray(
        args.router,
        host=args.host,
        port=port,
        blocking=True,  # SIGTERM and Ctrl-C delete the application and stop Ray (run_ray handles both)
        quiet=args.quiet,
        on_checked=start_up_line,
        drain_seconds=args.drain_seconds,  # each replica's graceful shutdown: its requests in flight finish
        num_replicas=args.replicas,
        upstreams=args.upstreams,
        data_dir=args.data_dir,
        api_keys=args.api_keys,
        pool=pool,
        limits=limits,
        cors_origins=args.cors_origin or (),
        knob=args.knob,
        encoder=args.encoder,
    )
    return 0


def register(subparsers) -> None:
    """Add ``serve`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "serve",
        help="serve a saved router over HTTP (OpenAI-compatible; learns from feedback)",
        description="Serve a saved router: /v1/route, /v1/predict, /v1/feedback, /v1/stats, and OpenAI-compatible "
        "/v1/chat/completions and /v1/models (model 'v0lite' routes). See docs/serve.md.",
    )
    p.add_argument(
        "--router",
        required=True,
        metavar="DIR",
        help="folder of a router saved by `v0lite route-eval --save-router DIR` (or Router.save)",
    )
    encoder_flag(p, ENCODER_MOVED_HELP.format(what="router's value model's "))
    p.add_argument(
        "--upstreams",
        metavar="FILE.json",
        default=None,
        help='pool model -> {"base_url": ..., "model": upstream name, "api_key_env": VAR, "price": USD per call}; '
        "api_key_env and price optional. Needed for /v1/chat/completions: every pool model needs one",
    )
    p.add_argument(
        "--api-keys",
        metavar="FILE",
        default=None,
        help="file of API keys, one a line: every endpoint but /healthz and /readyz then needs "
        "'Authorization: Bearer KEY'. Required to bind a non-loopback --host",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="the outcome store's folder (SQLite; created; empty or an earlier store). Without it, "
        "/v1/feedback is off. A restart replays it into the model",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument(
        "--pool",
        default=None,
        metavar="A,B",
        help="route among these models only (a subset of the router's pool, or upstream models that join "
        "once they have outcomes)",
    )
    p.add_argument(
        "--knob",
        type=finite_knob,
        default=None,
        metavar="VALUE",
        help="the knob of the router's saved strategy that model 'v0lite' (and /v1/route without \"strategy\") "
        "routes with: utility: lam >= 0 (default 0); threshold: tau in [0, 1] (default 0.5); budget: mean cost "
        "per prompt >= 0; quality-target: target in [0, 1]. Required when the strategy is budget or "
        "quality-target (they have no default); checked at start",
    )
    lim = p.add_argument_group("limits")
    lim.add_argument(
        "--max-body-bytes", type=int, default=1_000_000, metavar="N", help="larger bodies get 413 (default 1000000)"
    )
    lim.add_argument(
        "--max-route-prompts",
        type=int,
        default=4096,
        metavar="N",
        help="most prompts in one /v1/route or /v1/predict request; more get 413 (default 4096)",
    )
    lim.add_argument(
        "--max-prompt-chars", type=int, default=32_000, metavar="N", help="longer prompts get 413 (default 32000)"
    )
    lim.add_argument(
        "--refresh-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="how often stored feedback is applied to the model: feedback changes routing within about "
        "this delay (default 1)",
    )
    lim.add_argument("--max-batch", type=int, default=64, metavar="N", help="most prompts per micro-batch (64)")
    lim.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        metavar="MS",
        help="longest wait for more requests to fill a micro-batch, while requests arrive together (default 2)",
    )
    lim.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        metavar="N",
        help="most requests waiting for the model; more get 429 at once (default 1024)",
    )
    lim.add_argument(
        "--upstream-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="upstream read timeout between two chunks of an answer; the connect timeout is this, capped at "
        "10 s (default 60)",
    )
    lim.add_argument(
        "--startup-wait",
        type=float,
        default=60.0,
        metavar="S",
        help="while the outcome store is replayed at start, requests wait up to S seconds, then 503 (60)",
    )
    lim.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, wait this long for requests in flight (default 30)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="URL",
        help="allow browser calls from this origin (repeatable); default: no CORS",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="N",
        help="serve N replicas of the app on a local Ray Serve instance (the ray extra) over the one --data-dir "
        "store; default: one process, no Ray. See docs/serve.md, 'More than one machine'",
    )
    add_progress_flags(p)  # --quiet, as every subcommand has it; here it also silences the access log
    next(
        a for a in p._actions if "--quiet" in a.option_strings
    ).help = "log warnings only: no access log, no start-up line (the service shows no progress bars)"
    p.set_defaults(func=_serve, inputs=("upstreams", "api_keys"))
