"""``POST /v1/chat/completions``: pick the model (routing, or a pool name), forward, fall back once.

The rule on an upstream's failure:

* no answer, a timeout, a 2xx answer that is not strict JSON, a 5xx, a 401/403/404 (the gateway's
  own configuration: a wrong key or model name) or a 429: the next-best model is tried once;
* a 400, 413 or 422 is the request's fault (another model would refuse it too): the upstream's
  status and error object go to the client as they are, with no fallback;
* when every model tried failed: 429 if the last failure was a 429, with ``Retry-After``: the largest
  valid one among the 429s, in integer seconds (an HTTP-date counted from now; invalid values ignored;
  none valid, no header), else 502 with the last failure's reason.
"""

from __future__ import annotations

import math

from ..log import is_blank
from ._models import ApiError
from ._requests import check_prompts, choose_or_422, last_user_text, strategies, strategy_router, submit
from ._upstream import UpstreamFailure, relay

__all__ = ["chat_completion", "CLIENT_FAULTS"]

CLIENT_FAULTS = (400, 413, 422)  # an upstream's answer that is the request's fault: passed through, no fallback


async def chat_completion(state, request, body: dict, req, log):
    """The response to a parsed chat completion request (``body`` as sent, ``req`` its :class:`ChatRequest`)."""
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.background import BackgroundTask

    if not state.upstreams:
        raise ApiError(
            503,
            "no upstreams are configured, so chat completions cannot be forwarded (/v1/route works without). "
            "Fix: start the server with upstreams (`v0lite serve --upstreams FILE.json`).",
        )
    stream = bool(req.stream)
    warned: list[str] = []
    candidates = await chat_candidates(state, req, request, warned=warned)
    failures: list[UpstreamFailure] = []
    for name in candidates:
        up = state.upstreams[name]
        try:
            res = await state.client.open(up, body, stream=stream)
        except UpstreamFailure as exc:
            state.metrics.upstream_errors.labels(name, exc.label).inc()
            log.warning("v0lite serve: %s", exc)
            if exc.status in CLIENT_FAULTS:
                return _passed_through(exc, name)
            failures.append(exc)
            continue
        headers = {"x-v0lite-model": name}
        if warned:  # the routing warned (e.g. an infeasible budget): a header, as the answer is the upstream's
            headers["x-v0lite-warning"] = " | ".join(warned).encode("ascii", "backslashreplace").decode("ascii")
        if stream:
            return StreamingResponse(
                relay(state, res, name, request.scope, log),
                status_code=res.status_code,
                media_type=res.headers.get("content-type", "text/event-stream"),
                headers=headers,
                background=BackgroundTask(res.aclose),
            )
        res["model"] = name
        try:
            return JSONResponse(res, headers=headers)
        except ValueError:  # a lone surrogate escape ("\ud800" unpaired) parses, but is no text to send on
            why = "the answer holds a lone surrogate escape, which is not text"
            exc = UpstreamFailure(name, 200, why, label="bad_json")
            state.metrics.upstream_errors.labels(name, exc.label).inc()
            log.warning("v0lite serve: %s", exc)
            failures.append(exc)
    raise _all_failed(failures)


def _passed_through(exc: UpstreamFailure, name: str):
    """An upstream's 400/413/422 as the client's answer: its status and error object (the key blanked); a
    body that is no OpenAI error object, or no strict JSON, becomes one (``"code": "upstream_refused"``)."""
    from fastapi.responses import JSONResponse

    headers = {"x-v0lite-model": name}
    if exc.body is not None and isinstance(exc.body.get("error"), dict):
        try:
            return JSONResponse(exc.body, status_code=exc.status, headers=headers)
        except ValueError:  # not sendable as it is (a lone surrogate escape): made up below
            pass
    err = ApiError(
        exc.status,
        f"{exc}",
        fix="correct the request as the upstream's message says (another model would refuse it too).",
        code="upstream_refused",
        headers=headers,
    )
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def retry_after_seconds(value: str, now: float | None = None) -> int | None:
    """One ``Retry-After`` value in seconds: non-negative integer delay-seconds, or an HTTP-date (seconds from
    ``now``, 0 if past); None for anything else (``-5``, ``1.5``, ``inf``, ``5, 7``, ``abc``)."""
    import time
    from email.utils import parsedate_to_datetime

    v = value.strip()
    if v.isascii() and v.isdigit():
        try:
            return int(v)
        except ValueError:  # over 4,300 digits
            return None
    if not any(c.isalpha() for c in v):  # a date names its month; "5, 7" and "-5" are no dates
        return None
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP-dates are GMT
        import datetime as dt

        when = when.replace(tzinfo=dt.timezone.utc)
    delay = when.timestamp() - (time.time() if now is None else now)
    return max(0, math.ceil(delay))


def _retry_after(values: list[str]) -> str | None:
    """The largest valid ``Retry-After`` among ``values`` as integer seconds; None when none is valid."""
    secs = [s for s in (retry_after_seconds(v) for v in values) if s is not None]
    return str(max(secs)) if secs else None


def _all_failed(failures: list[UpstreamFailure]) -> ApiError:
    """The answer when every candidate failed; its message names them in the order they were tried."""
    last = failures[-1]
    text = str(last)
    if len(failures) > 1:  # the routed model, then the next best

        def said(f: UpstreamFailure) -> str:
            return f"{'answered ' + str(f.status) if f.status else 'failed'}: {f.reason}"

        first = failures[0]
        text = f"upstream {first.model!r} (routed) {said(first)}; then {last.model!r} {said(last)}"
    text = text if text.endswith((".", "!", "?")) else text + "."  # "... (ConnectError). Fix: ..."
    if last.status == 429:
        after = _retry_after([f.retry_after for f in failures if f.status == 429 and f.retry_after])
        return ApiError(
            429,
            text,
            param="model",
            value=last.model,
            fix=f"retry after {after} seconds." if after else "retry later.",
            code="rate_limit_exceeded",
            headers={"retry-after": after} if after else None,
        )
    return ApiError(502, text, param="model", value=last.model, fix="retry later, or name another model.")


async def chat_candidates(state, req, request=None, *, warned: list | None = None) -> list[str]:
    """The chosen model and the next best (tried once if the first fails); a pool name bypasses routing.

    The routing's warnings (the first choice's: the one the request asked for) are appended to ``warned``."""
    name = req.model
    if name in state.upstreams:
        return [name]
    if name != "v0lite" and not name.startswith("v0lite/"):
        valid = ["v0lite", "v0lite/<strategy>/<knob>", *sorted(state.upstreams)]
        shown = name if len(name) <= 80 else name[:77] + "..."  # as "value" is shortened
        raise ApiError(
            404,
            f"model {shown!r} is unknown. Fix: use one of {valid}.",
            code="model_not_found",
            param="model",
            value=name,
            fix=f"use one of {valid}.",
        )
    parts = name.split("/")
    strategy = parts[1] if len(parts) > 1 else None
    knob = state.knob if strategy is None else None  # a bare "v0lite": the server's --knob, if given
    if strategy is not None:  # an unknown or empty strategy, named in the chat's terms: "model"
        try:
            strategy_router(state.router, strategy)
        except ApiError as exc:
            raise ApiError(
                422,
                f"model {name!r}: {strategy!r} is not a routing strategy.",
                param="model",
                value=name,
                fix=f"use v0lite/<strategy>/<knob> with a strategy of {strategies()}, e.g. v0lite/threshold/0.7.",
            ) from exc
    if len(parts) > 3 or (len(parts) == 3 and not parts[2]):
        raise ApiError(
            422,
            f"model {name!r}: expected v0lite, v0lite/<strategy> or v0lite/<strategy>/<knob>.",
            param="model",
            value=name,
            fix="name it as e.g. v0lite/utility/0.5.",
        )
    if len(parts) == 3:
        try:
            knob = float(parts[2])
        except ValueError:
            knob = math.nan
        if not math.isfinite(knob):
            raise ApiError(
                422,
                f"model {name!r}: knob {parts[2]!r} is not a finite number.",
                param="model",
                value=name,
                fix=f"name a finite knob, e.g. v0lite/{strategy}/0.6.",
            )
    at, text = last_user_text(req.messages)
    content = req.messages[at].get("content")
    if isinstance(content, list) and is_blank(text):
        where, pool = f"messages[{at}].content", sorted(state.upstreams)
        raise ApiError(
            422,
            f"{where} has no text: only text parts are routed on (image and other parts are ignored).",
            param=where,
            fix=f'add a {{"type": "text", "text": ...}} part saying what is asked, or send "model" as a pool '
            f"model's name (one of {pool}) to skip routing: that model gets the message as it is.",
        )
    check_prompts(state, [text], f"messages[{at}].content", True)
    rows = await submit(state, "route", [text], request)
    router = strategy_router(rows[0][0], strategy)
    names = [p for p in state.allowed(router) if p in state.upstreams]
    cols = [router.policies_.index(p) for p in names]
    P, C = rows[0][1][None, cols], rows[0][2][None, cols]

    first = int(choose_or_422(router, P, C, knob, model=name, warned=warned)[0])
    out = [names[first]]
    rest = [j for j in range(len(names)) if j != first]
    if rest:
        out.append(names[rest[int(choose_or_422(router, P[:, rest], C[:, rest], knob, model=name)[0])]])
    state.metrics.routes.labels(out[0]).inc()
    return out
