"""The app factory: a FastAPI app over a :class:`v0lite.routing.Router`, its outcome store and its upstreams.

A thin layer: routing is ``Router.predict_matrix`` + ``choose`` (the router's strategies),
prediction is the value model's ``predict``, learning is ``Router.add_history`` (in
:mod:`._state`). This module parses requests, checks them, and renders answers and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import uuid

from fastapi import Request  # this module is imported only once the serve extra is checked

from .._log_warnings import near_names
from ..exceptions import DataError, EncoderLoadError, EncoderMismatchError, V0liteError
from ._auth import KeyChecker, read_api_keys
from ._chat import chat_completion

# request models at module level: FastAPI resolves the handlers' annotations in this module's globals
from ._models import ApiError, ChatRequest, FeedbackRequest, PredictRequest, RouteRequest, validation_error
from ._preflight import check_bind  # re-exported: kept free of FastAPI for the CLI's first check
from ._requests import (
    check_count,
    check_feedback_rows,
    check_names,
    check_outcome_rows,
    check_pairs,
    check_policy_name,
    check_prompts,
    choose_or_422,
    http_fix,
    idempotency_key,
    knob_used,
    one_or_many,
    parse_body,
    store_batch,
    strategies,
    strategy_router,
    submit,
)
from ._state import Limits, ServeState, check_value_model_encoder, load_router
from ._store import SqliteStore, check_store_dir, check_writable
from ._upstream import ignored_prices, read_upstreams

__all__ = ["create_app", "check_bind", "check_default_knob"]

log = logging.getLogger("v0lite.serve")
PUBLIC = ("/healthz", "/readyz")  # everything else needs a key when keys are set
ENDPOINTS = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/route",
    "/v1/predict",
    "/v1/feedback",
    "/v1/stats",
    "/v1/models",
    "/v1/chat/completions",
)


def check_default_knob(strategy, knob):
    """The knob a bare ``"v0lite"`` model routes with: ``knob`` checked by the router's own strategy, or None
    (the strategy's default knob). A strategy without a default knob (``budget``, ``quality-target``) needs one."""
    name = getattr(strategy, "name", type(strategy).__name__)
    knob_name = getattr(strategy, "knob_name", "knob") or "knob"
    lo, hi = getattr(strategy, "knob_range", (-math.inf, math.inf))
    rule = (f">= {lo:g}" if hi == math.inf else f"in [{lo:g}, {hi:g}]") if math.isfinite(lo) else "a finite number"
    if knob is None:
        if getattr(strategy, "default_knob", None) is None:
            raise DataError(
                f"the router's strategy {name!r} needs its knob {knob_name!r} (`v0lite serve --knob VALUE`) and has "
                f'no default, so the model name "v0lite" could not route (every chat completion and /v1/route would '
                f'answer 422). Fix: pass knob=<value> {rule}: the {knob_name} a bare "v0lite" routes with.'
            )
        return None
    ok = not isinstance(knob, bool) and isinstance(knob, (int, float)) and math.isfinite(knob)
    try:
        value = strategy.check_knob(knob) if ok and hasattr(strategy, "check_knob") else float(knob)
    except (V0liteError, TypeError, ValueError) as exc:
        why = str(exc).partition(" Fix:")[0].rstrip(".")
        raise DataError(
            f"knob {knob!r}: not a {knob_name} the router's strategy {name!r} takes ({why}). "
            f"Fix: pass knob=<value> {rule}."
        ) from None
    if not ok:
        raise DataError(f"knob {knob!r}: must be a finite number. Fix: pass knob=<value> {rule}.")
    return value


def _knob_text(knob: float) -> str:
    """``0.002``, not ``0.002000``; ``7``, not ``7.0``; the full digits where ``:g`` would round."""
    return f"{knob:g}" if float(f"{knob:g}") == knob else repr(knob)


# --------------------------------------------------------------------------- the one guard (ASGI)


class _Guard:
    """Pure ASGI middleware: body-size limit, bearer auth, per-endpoint metrics.

    Pure ASGI rather than ``BaseHTTPMiddleware``: it adds no task per request and passes a
    streaming answer through untouched.
    """

    def __init__(self, app, *, state: ServeState, keys: KeyChecker):
        self.app, self.state, self.keys = app, state, keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        m = self.state.metrics
        t0 = time.perf_counter()
        status = {"code": 500, "started": False, "sse": False}
        scope["v0lite.status"] = status  # a stream that breaks after its start says so here (502 in the metrics)

        rid = _request_id(scope)

        async def send_status(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*(message.get("headers") or ()), (b"x-request-id", rid)]}
                status["code"], status["started"] = message["status"], True
                ctype = dict(message.get("headers") or ()).get(b"content-type", b"")
                status["sse"] = ctype.startswith(b"text/event-stream")
            await send(message)

        try:
            if self.keys and path not in PUBLIC and scope["method"] != "OPTIONS":  # CORS preflight carries no key
                headers = dict(scope.get("headers") or ())
                auth = headers.get(b"authorization", b"").decode("latin-1")
                if not self.keys.check(auth):
                    return await _send_json(
                        send_status,
                        ApiError(
                            401,
                            "missing or wrong API key. Fix: send the header Authorization: Bearer <key> with a key "
                            "of the server's (`v0lite serve --api-keys FILE`).",
                            param="Authorization",
                        ),
                        extra=[(b"www-authenticate", b"Bearer")],
                    )
            limit = self.state.limits.max_body_bytes
            length = dict(scope.get("headers") or ()).get(b"content-length")
            too_big = ApiError(
                413,
                f"the body is over {limit:,} bytes, the server's limit (`v0lite serve --max-body-bytes N`). "
                "Fix: send fewer or shorter prompts per request.",
                param="body",
            )
            if length is not None:
                if not length.isdigit() or int(length) > limit:
                    return await _send_json(send_status, too_big)
            elif scope["method"] in ("POST", "PUT", "PATCH"):
                # no length given (chunked): read up to the limit first, then replay it to the app
                chunks, size, more = [], 0, True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > limit:
                        return await _send_json(send_status, too_big)
                    more = message.get("more_body", False)
                body, sent, upstream_receive = b"".join(chunks), False, receive

                async def receive():  # noqa: F811 - replays the buffered body once, then the connection's own
                    nonlocal sent
                    if sent:
                        return await upstream_receive()  # waits for the disconnect, as uvicorn's own does
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:
            # the drain time (--drain-seconds) ran out: the client gets the error object, not a bare 500.
            # The request's task ends here either way (uvicorn cancelled it to stop)
            if not status["started"]:
                await _send_json(
                    send_status,
                    ApiError(
                        503,
                        "the server is stopping and its drain time ran out before this request finished.",
                        fix="retry the request (on another replica, or once the server is back).",
                    ),
                )
                return
            if status["sse"]:  # a stream (passed on event by event): it ends with an error event, as a break does
                status["code"] = 503
                err = ApiError(
                    503,
                    "the server is stopping and its drain time ran out before this stream finished; the answer "
                    "above is incomplete.",
                    code="draining",
                    fix="retry the request (on another replica, or once the server is back).",
                )
                body = b"data: " + json.dumps(err.body()).encode("utf-8") + b"\n\n"
                with contextlib.suppress(Exception):  # the client may be gone too
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            raise
        except Exception as exc:
            # an internal error, answered here (not by Starlette's outermost handler, outside this guard):
            # the 500 carries x-request-id, and the traceback is logged once, with the request's id
            if status["started"]:  # too late for an error object: the server closes the connection (and logs it)
                raise
            log.exception("v0lite serve: internal error on %s (x-request-id %s)", path, rid.decode())
            err = ApiError(500, f"internal error ({type(exc).__name__}); see the server's log.")
            await _send_json(send_status, err)
        finally:
            m.requests.labels(endpoint, str(status["code"])).inc()
            m.latency.labels(endpoint).observe(time.perf_counter() - t0)


_RID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _request_id(scope) -> bytes:
    """The client's ``x-request-id`` if it is a sane token (1-128 of ``A-Za-z0-9._:-``), else a new one."""
    for k, v in scope.get("headers") or ():
        if k == b"x-request-id" and _RID.fullmatch(v):
            return v
    return b"req_" + uuid.uuid4().hex.encode()


async def _send_json(send, err: ApiError, extra=()) -> None:
    body = json.dumps(err.body()).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- the factory


def _new_policy_notes(items: list[dict], declared: list[str], named: list[str], known: list[str]) -> list[dict]:
    """Feedback's ``new_policies`` answer: ``items`` (the batch's new models, :meth:`joining`) with a ``note``
    on one that is a known model written another way, and an item for each declared name no row names
    (nothing was stored for it: a declaration alone is not kept)."""
    near = near_names([it["policy"] for it in items], known)
    for it in items:
        if it["policy"] in near:
            said = f"{it['policy']!r} differs from the known {near[it['policy']]!r} only by case, spaces or Unicode "
            said += "width: it is read as a new model. Fix: if it is that model, send the name as the history does."
            it["note"] = f"{said} {it['note']}" if it.get("note") else said
    for p in (p for p in declared if p not in named):
        close = near_names([p], [*named, *known])
        mean = (" and it is not known yet" if p not in known else "") + "."
        mean += f" Did you mean {close[p]!r}?" if close else ""
        items.append(
            {
                "policy": p,
                "joins_pool": False,
                "cost": None,
                "note": f"no row of outcomes names it, so nothing was stored for it{mean} "
                'Fix: send its outcomes with it in "new_policies" (or correct the name in new_policies).',
            }
        )
    return items


def create_app(
    router,
    *,
    upstreams=None,
    data_dir=None,
    store=None,
    api_keys=None,
    pool=None,
    limits: Limits | None = None,
    cors_origins=(),
    knob=None,
    encoder=None,
):
    """Build the FastAPI app (see :func:`v0lite.serve.create_app` for the parameters)."""
    from ..routing import Router

    # the cheap checks first: a typo in a flag fails before the router loads
    limits = (limits or Limits()).check()
    ups = {} if upstreams is None else read_upstreams(upstreams)
    if isinstance(api_keys, (str, bytes)) or hasattr(api_keys, "__fspath__"):
        api_keys = read_api_keys(api_keys)
    keys = KeyChecker(list(api_keys or ()))
    if store is None and data_dir is not None:
        check_writable(data_dir)  # a read-only volume is named as such, not as "permission denied"
        check_store_dir(data_dir)
    if not isinstance(router, Router):
        router = load_router(router, encoder=encoder)
    if not hasattr(router, "policies_"):
        raise DataError("the router is not fitted. Fix: fit it (Router(...).fit(log)) or load a saved one.")
    check_value_model_encoder(router)
    knob = check_default_knob(router.strategy_, knob)
    if pool is not None:
        pool = [str(p) for p in pool]
        unknown = [p for p in pool if p not in router.policies_ and p not in ups]
        if not pool or unknown:
            raise DataError(
                f"pool names {unknown or pool}, which is neither in the router's pool {router.policies_} nor "
                "in the upstreams. Fix: name models of the router's pool, or of the upstreams (they join the pool "
                "once they have outcomes)."
            )
    if ups:
        needed = pool if pool is not None else list(router.policies_)
        missing = [p for p in needed if p not in ups]
        if missing:
            covered = ",".join(p for p in needed if p in ups) or "A,B"
            raise DataError(
                f"models {missing} of the pool have no upstream, so chat completions could not reach them. "
                f"Fix: add them to the upstreams file, or narrow the pool with pool='{covered}'."
            )
    for text in ignored_prices(ups, router, upstreams):
        log.warning("v0lite serve: %s", text)
    if store is None and data_dir is not None:
        store = SqliteStore(data_dir)

    from ._metrics import Metrics

    state = ServeState(router, store=store, upstreams=ups, pool=pool, limits=limits, metrics=Metrics(), knob=knob)
    return _build(state, keys, list(cors_origins or ()))


def _build(state: ServeState, keys: KeyChecker, cors_origins: list[str]):
    from contextlib import asynccontextmanager

    import numpy as np
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ._upstream import UpstreamClient

    @asynccontextmanager
    async def lifespan(app):
        state.client = UpstreamClient(timeout_s=state.limits.upstream_timeout_s) if state.upstreams else None
        await state.start()
        try:
            yield
        finally:
            await state.stop()
            if state.client is not None:
                await state.client.close()

    app = FastAPI(
        title="v0lite serve",
        summary="Route each prompt to the model most likely to succeed at its cost; learn from feedback.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.v0lite = state

    def error(err: ApiError):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):  # unknown paths, wrong methods: the one error shape
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            return error(
                ApiError(
                    404,
                    f"no endpoint {path}.",
                    param="path",
                    value=path,
                    fix=f"use one of {list(ENDPOINTS)} (docs/serve.md, Endpoints).",
                )
            )
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("allow") or (exc.headers or {}).get("Allow") or ""
            return error(
                ApiError(
                    405,
                    f"{path} does not take {method}.",
                    param="method",
                    value=method,
                    fix=f"send {allow or 'the method docs/serve.md names'} {path}.",
                    headers=exc.headers,
                )
            )
        return error(ApiError(exc.status_code, str(exc.detail), headers=exc.headers))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        return error(validation_error(list(exc.errors())))

    @app.exception_handler(V0liteError)
    async def _library(request, exc: V0liteError):
        if isinstance(exc, (EncoderMismatchError, EncoderLoadError)):  # the server's state, not the request
            what = str(exc).partition("Fix:")[0].strip()
            return error(
                ApiError(
                    503,
                    f"the server cannot embed new prompts: {what}",
                    code="encoder_mismatch" if isinstance(exc, EncoderMismatchError) else "encoder_unavailable",
                    fix="retrying will not help until the server's operator restarts it with the encoder the "
                    "router was fitted with (v0lite serve --encoder PATH) or with a refitted router.",
                )
            )
        text = http_fix(str(exc))
        return error(ApiError(422, text, fix=text.partition("Fix:")[2].strip() or None))

    # -- health
    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        replaying = state.started and not state.ready and state.store_problem() is None
        body = {"ready": state.ready, "replaying": replaying, "refresh_error": state.store_problem()}
        if replaying:
            body["applied_rows"] = state.applied_rows
            with contextlib.suppress(Exception):  # the replay's goal: rows in the store now
                body["store_rows"] = await asyncio.to_thread(state.store.count)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    async def metrics():
        data, ctype = state.metrics.render()
        return Response(data, media_type=ctype)

    # -- routing and prediction
    @app.post("/v1/route")
    async def route(request: Request):
        """Per prompt: ``model`` (the choice), ``p`` and ``cost`` (per pool model), ``strategy`` and ``knob``; a list
        ``prompts`` answers ``{"results": [...]}``. ``warnings`` (a list of text) is present only when the strategy
        warned, e.g. a budget below the cheapest routing's mean cost (the cheapest routing is returned)."""
        _, req = await parse_body(request, RouteRequest)
        await state.wait_ready()
        prompts, single = one_or_many(req.prompt, req.prompts, "prompt", "prompts")
        check_count(state, prompts, "prompts")
        check_prompts(state, prompts, "prompt" if single else "prompts", single)
        allowed = state.allowed()
        pool = list(dict.fromkeys(req.pool)) if req.pool is not None else allowed
        for i, name in enumerate(pool):  # a model with outcomes that routing may not choose: say why
            why = None if name in allowed else state.not_routable(name)
            if why:
                raise ApiError(422, f"pool[{i}]: {name!r} is not a model of the pool: {why[0]}. Fix: {why[1]}",
                               param=f"pool[{i}]", value=name, fix=why[1])  # fmt: skip
        check_names(pool, allowed, "pool", False, "a model of the pool")
        strategy_router(state.router, req.strategy)  # an unknown strategy fails before any work
        rows = await submit(state, "route", prompts, request)
        router = strategy_router(rows[0][0], req.strategy)
        cols = [router.policies_.index(p) for p in pool if p in router.policies_]
        names = [router.policies_[j] for j in cols]
        P = np.stack([r[1] for r in rows])[:, cols]
        C = np.stack([r[2] for r in rows])[:, cols]
        knob = req.knob if req.knob is not None or req.strategy is not None else state.knob  # the server's --knob
        warned: list[str] = []
        idx = choose_or_422(router, P, C, knob, warned=warned)
        strategy, knob = router.strategy_.name, knob_used(router, knob)
        out = []
        for i, j in enumerate(idx):
            state.metrics.routes.labels(names[j]).inc()
            out.append(
                {
                    "model": names[j],
                    "p": dict(zip(names, P[i].tolist())),
                    "cost": dict(zip(names, C[i].tolist())),
                    "strategy": strategy,
                    "knob": knob,
                }
            )
        body = out[0] if single else {"results": out}
        if warned:  # present only then: a client reads its absence as "routed as asked"
            body["warnings"] = warned
        return body

    @app.post("/v1/predict")
    async def predict(request: Request):
        _, req = await parse_body(request, PredictRequest)
        await state.wait_ready()
        prompts, single = one_or_many(req.prompt, req.prompts, "prompt", "prompts")
        check_count(state, prompts, "prompts")
        check_prompts(state, prompts, "prompt" if single else "prompts", single)
        if req.policy is not None and req.policies is not None:
            raise ApiError(422, 'send "policy" or "policies", not both. Fix: use one.', param="policy")
        one_policy = req.policy is not None
        policies = [req.policy] if one_policy else list(req.policies or state.allowed())
        for i, name in enumerate(policies):  # a model of the upstreams file waiting for its first outcome: say so
            why = state.no_outcomes_yet(name)
            if why:
                where = "policy" if one_policy else f"policies[{i}]"
                raise ApiError(422, f"{where}: {name!r} is not a policy with history: {why[0]}. Fix: {why[1]}",
                               param=where, value=name, fix=why[1])  # fmt: skip
        check_names(
            policies,
            state.known_policies(),
            "policy" if one_policy else "policies",
            one_policy,
            "a policy with history",
        )
        policies = list(dict.fromkeys(policies))  # a name sent twice is computed once (one key in the answer)
        check_pairs(state, len(prompts), len(policies))
        pairs = [(p, t) for t in prompts for p in policies]
        values = await submit(state, "predict", pairs, request)
        m = len(policies)
        out = [{"p": dict(zip(policies, values[i * m : (i + 1) * m]))} for i in range(len(prompts))]
        return out[0] if single else {"results": out}

    # -- feedback
    @app.post("/v1/feedback")
    async def feedback(request: Request):
        _, req = await parse_body(request, FeedbackRequest)
        if state.store is None:
            raise ApiError(
                503,
                "this server keeps no outcomes. Fix: start it with an outcome store (`v0lite serve --data-dir DIR`, "
                "or create_app(data_dir=...)).",
            )
        rows = [o.model_dump() for o in req.outcomes]
        key = idempotency_key(request)
        declared = list(dict.fromkeys(req.new_policies or ()))
        for i, name in enumerate(declared):
            check_policy_name(name, f"new_policies[{i}]")
        await state.wait_ready()  # the names below are checked against the replayed store's
        known = state.known_policies()
        accepted = set(known) | set(state.upstreams) | set(declared)
        await check_feedback_rows(state, rows, accepted, known)
        # the library's own check of outcome rows, the one add_history runs: a row the refresh would
        # reject never reaches the store (it would block every later row)
        await asyncio.to_thread(check_outcome_rows, state, rows)
        first, last, fresh = await store_batch(state, rows, key)  # 200 only after the commit returned
        if fresh:
            state.note_stored([p for p in dict.fromkeys(r["policy"] for r in rows) if p not in known], last)
            state.metrics.feedback_rows.inc(len(rows))
        queued = max(last - state.last_id, 0 if not fresh else len(rows))
        out = {
            "stored": len(rows),
            "ids": [first, last],
            "queued_rows": queued,
            "applied_within_s": state.applied_within(queued),
        }
        if not fresh:
            out["replayed"] = True  # a retry of a batch already stored under this Idempotency-Key: nothing stored
        named = list(dict.fromkeys(r["policy"] for r in rows))
        new = [p for p in named if p not in known]
        items = _new_policy_notes(state.joining(new) if new else [], declared, named, known)
        if items:
            out["new_policies"] = items
        return out

    @app.get("/v1/stats")
    async def stats():
        return state.stats(await asyncio.to_thread(state.feedback_count))  # the rest read on the loop: one snapshot

    # -- OpenAI-compatible
    @app.get("/v1/models")
    async def models():
        own = state.router.strategy_
        ids = (
            ["v0lite"]
            + ([f"v0lite/{own.name}/{_knob_text(state.knob)}"] if state.knob is not None else [])  # = "v0lite"
            + [
                f"v0lite/{s}"
                for s in strategies()
                if getattr(strategy_router(state.router, s).strategy_, "default_knob", None) is not None
            ]
            + sorted(set(state.allowed()) | set(state.upstreams))
        )
        return {
            "object": "list",
            "data": [{"id": i, "object": "model", "created": 0, "owned_by": "v0lite"} for i in ids],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body, req = await parse_body(request, ChatRequest)
        await state.wait_ready()
        return await chat_completion(state, request, body, req, log)

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "idempotency-key", "x-request-id"],
            expose_headers=["x-v0lite-model", "x-request-id"],
        )
    app.add_middleware(_Guard, state=state, keys=keys)
    return app
