"""Reading and checking requests: the body parser, names, prompts and knobs, in the client's terms.

Every function raises :class:`~._models.ApiError` (the field, the value and the fix in JSON field
names); the app renders it. The checks themselves are the library's (strategies, knobs, outcome
rows): this module only names the field a problem came from.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import warnings

from fastapi import Request  # this module is imported only once the serve extra is checked

from .._log_warnings import near_names
from ..exceptions import V0liteError, V0liteWarning
from ..log import is_blank
from ._batcher import CallerGone, QueueFull
from ._models import ApiError, _short, json_type, validation_error
from ._state import ServeState

_EXAMPLES = {
    "RouteRequest": '{"prompt": "..."}',
    "PredictRequest": '{"prompt": "...", "policy": "..."}',
    "FeedbackRequest": '{"outcomes": [{"policy": "...", "prompt": "...", "score": 1.0}]}',
    "ChatRequest": '{"model": "v0lite", "messages": [{"role": "user", "content": "..."}]}',
}


async def parse_body(request: Request, model):
    """The body as ``model`` (a pydantic class), read as JSON whatever its Content-Type says.

    One parser for every endpoint: an empty body, malformed JSON (with its position), a body that
    is not an object and a field error each get their own message, in the client's terms.
    """
    from pydantic import ValidationError

    raw = await request.body()
    example = _EXAMPLES[model.__name__]
    fix = f"send a JSON object, e.g. {example}."
    if not raw.strip():
        raise ApiError(400, "the body is empty.", param="body", value="", fix=fix)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        text = raw[:80].decode("utf-8", "replace") + ("..." if len(raw) > 80 else "")
        raise ApiError(400, f"the body is not valid JSON ({exc}).", param="body", value=text, fix=fix) from None
    if not isinstance(body, dict):
        raise ApiError(
            422, f"the body must be a JSON object, got a JSON {json_type(body)}.", param="body", value=body, fix=fix
        )
    _check_text(body, "")
    try:
        return body, model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_text(value, where: str) -> None:
    """Refuse a string with a lone surrogate (``"\\ud800"`` unpaired: valid JSON, not text), naming its field."""
    if isinstance(value, str):
        if _lone_surrogate(value):
            shown = value.encode("utf-8", "backslashreplace").decode("utf-8")
            raise ApiError(
                422,
                f"{where or 'body'} holds a lone UTF-16 surrogate escape (a \\ud800-\\udfff escape without its "
                "pair), which is not text.",
                param=where or "body",
                value=shown,
                fix=f'send "{where}" as valid Unicode: escape a character outside the BMP as its surrogate pair, '
                "or send it as UTF-8.",
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            name = k.encode("utf-8", "backslashreplace").decode("utf-8")
            path = f"{where}.{name}" if where else name
            if _lone_surrogate(k):
                _check_text(k, path)
            _check_text(v, path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]")


_KNOB_WORDS = re.compile(r"\b(lam|tau|budget|target)\b( ?[=<>]=?)?")


def http_fix(message: str, field: str = "knob") -> str:
    """A library message with its fix in the JSON field's terms (``pass lam >= 0`` -> ``send "knob" >= 0``)."""
    head, sep, fix = message.partition("Fix:")
    if not sep:
        return message
    fix = _KNOB_WORDS.sub(lambda m: f'"{field}"' + (m.group(2) or ""), fix).replace(f'"{field}"=', f'"{field}": ')
    return head + sep + fix.replace(" pass ", " send ")


def strategy_router(router, name):
    """``router`` itself, or a shallow copy routing with strategy ``name`` (the library's strategy table)."""
    if name is None:
        return router
    from ..routing import get_strategy

    try:
        strategy = get_strategy(name)
    except V0liteError as exc:
        raise ApiError(
            422,
            str(exc),
            param="strategy",
            value=name,
            fix=f'send "strategy" as one of the valid names: {strategies()}.',
        ) from None
    return copy.copy(router).set_strategy(strategy)  # the library's one way, as `v0lite route --strategy`


def strategies() -> list[str]:
    from ..routing import STRATEGIES

    return sorted(STRATEGIES)


def choose_or_422(router, P, C, knob, *, model=None, warned: list | None = None):
    """``router.choose``; a library error as 422 on ``"knob"``, or on ``"model"`` when a chat request's
    model name (``v0lite/<strategy>/<knob>``) carried the knob.

    The strategy's warnings (a budget below the cheapest routing, an unreachable target: the
    request is still answered) are appended to ``warned`` as text, for the response to carry.
    """
    kw = {} if knob is None else {"knob": knob}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", V0liteWarning)
            idx = router.choose(P, C, **kw)
    except V0liteError as exc:
        if model is None:
            text = http_fix(str(exc), "knob")
            raise ApiError(422, text, param="knob", value=knob) from None
        what, _, lib_fix = str(exc).partition(" Fix:")
        m = re.search(r"pass (\w+)=<value>\s*([^.]*)", lib_fix)
        k, rule = (m.group(1), m.group(2).strip()) if m else ("knob", "")
        raise ApiError(
            422,
            f"model {model!r}: {what}",
            param="model",
            value=model,
            fix=f"use v0lite/{router.strategy_.name}/<{k}>" + (f" with {k} {rule}" if rule else "") + ".",
        ) from exc
    for w in caught:
        if issubclass(w.category, V0liteWarning):
            if warned is not None and str(w.message) not in warned:
                warned.append(str(w.message))
        else:  # not ours to answer with: passed on as the filters say
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return idx


def knob_used(router, knob):
    return knob if knob is not None else getattr(router.strategy_, "default_knob", None)


def one_or_many(one, many, name: str, names: str) -> tuple[list, bool]:
    if (one is None) == (many is None):
        raise ApiError(
            422,
            f'send exactly one of "{name}" (one) or "{names}" (a list), not both and not neither.',
            param=name,
            fix=f'send e.g. {{"{name}": "..."}} or {{"{names}": ["...", "..."]}}.',
        )
    return ([one], True) if one is not None else (list(many), False)


def each_item(n: int, check_one, what: str) -> None:
    """``check_one(i)`` for ``i < n``, every :class:`ApiError` it raises named in one (:func:`listing`)."""
    errors = []
    for i in range(n):
        try:
            check_one(i)
        except ApiError as exc:
            errors.append(exc)
            if len(errors) >= MAX_LISTED:
                break
    if errors:
        raise listing(errors, what)


def check_prompts(state: ServeState, prompts: list[str], field: str, single: bool) -> None:
    """Each prompt is text within the server's length limit; every refused one is named (:func:`each_item`)."""
    limit = state.limits.max_prompt_chars

    def one(i):
        t, where = prompts[i], field if single else f"{field}[{i}]"
        if is_blank(t):  # the log's own rule (U+200B alone is blank)
            raise ApiError(422, f"{where} is blank. Fix: send text.", param=where, value=t, fix="send text.")
        if len(t) > limit:
            raise ApiError(
                413,
                f"{where} has {len(t):,} characters, over the server's limit of {limit:,}. Fix: send at most "
                f"{limit:,} characters (the router reads the start and the end of a long prompt anyway), or raise "
                "the limit with `v0lite serve --max-prompt-chars N`.",
                param=where,
                fix=f"send at most {limit:,} characters, or raise `v0lite serve --max-prompt-chars N`.",
            )

    each_item(len(prompts), one, "prompts")


def check_names(names: list[str], valid: list[str], field: str, single: bool, what: str) -> None:
    """Each name is one of ``valid``; every other one is named (:func:`each_item`)."""

    def one(i):
        p, where = names[i], field if single else f"{field}[{i}]"
        if p not in valid:
            raise ApiError(
                422,
                f"{where}: {p!r} is not {what}. Fix: use one of {valid}.",
                param=where,
                value=p,
                fix=f"use one of {valid}.",
            )

    each_item(len(names), one, "names")


MAX_NAME_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_policy_name(name: str, where: str) -> None:
    """A model name feedback may create (stored for good): at most 256 characters, no control characters,
    no surrounding spaces, not one of the service's own names."""
    if len(name) > MAX_NAME_CHARS:
        raise ApiError(
            422,
            f"{where} has {len(name):,} characters, over the limit of {MAX_NAME_CHARS} for a model name "
            "(names are stored for good).",
            param=where,
            value=name,
            fix=f"send the model's name, at most {MAX_NAME_CHARS} characters.",
        )
    bad = _CONTROL.search(name)
    if bad:
        raise ApiError(
            422,
            f"{where} holds the control character U+{ord(bad.group()):04X}, which a model name may not hold "
            "(names are stored for good, and shown in logs and metrics).",
            param=where,
            value=name,
            fix="send the model's name without control characters (newlines, tabs, escapes).",
        )
    if name != name.strip():
        raise ApiError(
            422,
            f"{where}: {name!r} has spaces at its start or end, so it would name another model.",
            param=where,
            value=name,
            fix=f'send "{name.strip()}".',
        )
    if name == "v0lite" or name.startswith("v0lite/"):
        raise ApiError(
            422,
            f"{where}: {name!r} is the service's own model name (chat completions route with it).",
            param=where,
            value=name,
            fix="name the model that produced the outcome.",
        )


MAX_LISTED = 20  # refused rows listed in error.errors, as pydantic's field errors are


def listing(errors: list[ApiError], what: str = "rows") -> ApiError:
    """The first of ``errors`` (one per refused item, in order), all of them listed in ``error.errors``.

    A client fixes a batch in one round trip: every refused row or prompt is named (up to
    :data:`MAX_LISTED`), as pydantic's field errors are (:func:`~._models.validation_error`). The answer's
    status is the first's.
    """
    first = errors[0]
    if len(errors) > 1:
        more = "at least " if len(errors) >= MAX_LISTED else ""
        first = ApiError(
            first.status,
            f"{first.message} ({more}{len(errors)} {what} refused, listed in error.errors.)",
            kind=first.kind,
            param=first.param,
            value=first.value,
            fix=first.fix,
            code=first.code,
            headers=first.headers,
        )
    first.errors = [
        {"param": e.param, "value": _short(e.value), "fix": e.fix, "msg": e.message.partition(" Fix:")[0]}
        for e in errors
    ]
    return first


async def check_feedback_rows(state: ServeState, rows: list[dict], accepted: set, known: list[str]) -> None:
    """The service's own checks of feedback rows (blank text, a policy name, a model it does not know, a
    long prompt), every refused row named (:func:`each_item`); ``accepted``: the names a row may carry.

    One worker thread runs them: a name outside ``accepted`` is looked up in the store.
    """
    await asyncio.to_thread(
        each_item, len(rows), lambda i: _check_feedback_row(state, i, rows[i], accepted, known), "rows"
    )


def _check_feedback_row(state: ServeState, i: int, r: dict, accepted: set, known: list[str]) -> None:
    for f in ("policy", "prompt"):
        if is_blank(r[f]):  # the log's own rule: invisible format characters only count too
            where = f"outcomes[{i}].{f}"
            raise ApiError(422, f"{where} is blank. Fix: send text.", param=where, value=r[f], fix="send text.")
    check_policy_name(r["policy"], f"outcomes[{i}].policy")
    if r["policy"] not in accepted and state.stored_not_applied(r["policy"]):
        accepted.add(r["policy"])  # declared in an acknowledged batch the refresh has not applied yet
    if r["policy"] not in accepted:
        names = sorted(set(known) | set(state.upstreams))
        where, shown = f"outcomes[{i}].policy", names[:20] + (["..."] if len(names) > 20 else [])
        near = near_names([r["policy"]], names)
        mean = f" Did you mean {near[r['policy']]!r}?" if near else ""
        raise ApiError(
            422,
            f"{where}: {r['policy']!r} is not a model this server knows (its history and upstreams hold "
            f"{shown}), so it reads as a typo.{mean}",
            param=where,
            value=r["policy"],
            fix=f'correct the name; or, for a new model, list it in "new_policies": ["{r["policy"]}"] '
            '(or add it to the upstreams file with its "price").',
        )
    if len(r["prompt"]) > state.limits.max_prompt_chars:
        check_prompts(state, [r["prompt"]], f"outcomes[{i}].prompt", True)


def check_outcome_rows(state: ServeState, rows: list[dict]) -> None:
    """The library's own check of outcome rows (the one ``add_history`` runs), its refusal named as
    ``outcomes[i].<field>`` for every refused row (:func:`listing`).

    The rows are found only once the batch failed, by halving it (:func:`_refused_rows`): a batch of
    100k rows with one bad row at its end costs about 2 log2(100k) checks, not 100k. A row's field is its
    own ``DataError``'s ``column``, not the batch's (the batch may fail first on another row's field).
    """
    try:
        state.check_rows(rows)
    except V0liteError as exc:
        found: list = []
        _refused_rows(state.check_rows, rows, 0, len(rows), exc, found)
        if not found:  # the rows pass one by one, not together: the batch is named
            raise _refusal(rows, None, exc) from None
        raise listing([_refusal(rows, i, e) for i, e in found]) from None


def _refused_rows(check, rows: list[dict], lo: int, hi: int, exc, found: list) -> None:
    """Append ``(i, error)`` for each row of ``rows[lo:hi]`` (a slice ``check`` refused with ``exc``)
    that ``check`` refuses alone, in row order, until :data:`MAX_LISTED` are found.

    Halving: a half that passes holds no refused row, so each refused row costs about 2 log2(n) checks.
    A slice whose halves both pass is refused for its rows together; none of them is listed.
    """
    if hi - lo == 1:
        found.append((lo, exc))
        return
    mid = (lo + hi) // 2
    for a, b in ((lo, mid), (mid, hi)):
        if len(found) >= MAX_LISTED:
            return
        try:
            check(rows[a:b])
        except V0liteError as part:
            _refused_rows(check, rows, a, b, part, found)


def _refusal(rows: list[dict], at, exc) -> ApiError:
    """The 422 for row ``at`` (None: the batch) refused with ``exc``, its field the error's ``column``."""
    col = getattr(exc, "column", None)  # a DataError about one column says which
    where = "outcomes" if at is None else f"outcomes[{at}]"
    if at is not None and col in rows[at]:
        where += f".{col}"
    head = str(exc).partition(" Fix:")[0]
    if at is None:
        text = f"{where}: the outcome log refuses it ({head})."
    else:  # the row was checked on its own, so the library's text calls it row 0
        text = f"{where}: the outcome log refuses this row (checked on its own: {head})."
    fix = f'correct "{where}" (or leave an optional field out).'
    return ApiError(
        422,
        text,
        param=where,
        value=None if at is None or col not in rows[at] else rows[at][col],
        fix=fix,
    )


_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency_key(request: Request) -> str | None:
    """The feedback request's ``Idempotency-Key`` header (1-255 visible ASCII characters), or None."""
    keys = request.headers.getlist("idempotency-key")
    if len(keys) > 1:
        raise ApiError(
            422,
            f"the request has {len(keys)} Idempotency-Key headers; the batch is stored under one key.",
            param="Idempotency-Key",
            value=keys,
            fix="send one Idempotency-Key header per batch (a unique id, e.g. a UUID).",
        )
    key = keys[0] if keys else None
    if key is not None and not _KEY.fullmatch(key):
        raise ApiError(
            422,
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters.",
            param="Idempotency-Key",
            value=key,
            fix="send a unique id per batch, e.g. a UUID, and the same one when you retry that batch.",
        )
    return key


async def store_batch(state: ServeState, rows: list[dict], key: str | None) -> tuple[int, int, bool]:
    """Commit ``rows`` (once per ``key``): ``(first id, last id, stored now)``; a retry of a stored key stores none."""
    import asyncio
    import hashlib

    from ._store import StoreUnavailable, StoreUnreadable

    try:
        if key is None:
            first, last = await asyncio.to_thread(state.store.append, rows)
            state.commit_failed(None)
            return first, last, True
        once = getattr(state.store, "append_once", None)
        if once is None:
            raise ApiError(
                422,
                "this server's outcome store keeps no idempotency keys.",
                param="Idempotency-Key",
                value=key,
                fix="send the batch without the Idempotency-Key header (a retry may then store it twice).",
            )
        digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode("utf-8")).hexdigest()
        first, last, fresh, was = await asyncio.to_thread(once, rows, key, digest)
    except StoreUnreadable as exc:
        state.commit_failed(str(exc))  # /readyz turns 503: a load balancer stops sending feedback here
        raise ApiError(503, str(exc), code="store_unreadable") from None
    except StoreUnavailable as exc:  # a full disk, a lock held elsewhere, a read-only or failing volume
        if exc.lasting:  # /readyz turns 503 until writes work again; a lock is no reason to leave the pool
            state.commit_failed(str(exc), recheck=True)
        raise ApiError(503, str(exc), code=exc.code, headers={"retry-after": str(exc.retry_after)}) from None
    state.commit_failed(None)
    if was != digest:
        raise ApiError(
            422,
            f"Idempotency-Key {key!r} was already used for another batch (ids {first}..{last}), so this one "
            "was not stored.",
            param="Idempotency-Key",
            value=key,
            fix="send a new key with each new batch; reuse a key only to retry the very same batch.",
        )
    return first, last, fresh


async def submit(state: ServeState, kind: str, items: list, request: Request | None = None):
    """The batcher's results for ``items``; a large request stops between chunks once its client is gone."""
    gone = None if request is None else request.is_disconnected
    try:
        return await state.batchers[kind].submit(items, gone)
    except QueueFull as exc:
        state.metrics.rejected.inc()
        # Retry-After: the queue drains within a batch or two; clients that honour it back off on their own
        raise ApiError(
            429, f"the server is busy ({exc}). Fix: retry after a short wait.", headers={"retry-after": "1"}
        ) from None
    except CallerGone as exc:  # nobody reads this answer: it only names the request in the access log and metrics
        raise ApiError(499, f"the client closed the request ({exc}).", code="client_closed_request") from None


def check_count(state: ServeState, prompts: list, field: str) -> None:
    """At most ``--max-route-prompts`` prompts in one request (413 naming the field and the limit)."""
    limit = state.limits.max_route_prompts
    if len(prompts) > limit:
        raise ApiError(
            413,
            f"{field} has {len(prompts):,} prompts, over the server's limit of {limit:,} per request "
            "(`v0lite serve --max-route-prompts N`).",
            param=field,
            fix=f"send at most {limit:,} prompts per request (split the list over several requests).",
            code="too_many_prompts",
        )


def check_pairs(state: ServeState, n_prompts: int, n_policies: int) -> None:
    """A ``/v1/predict`` request computes at most as many values as the largest ``/v1/route`` request:
    prompts x distinct policies <= ``--max-route-prompts`` x the pool's size (413 naming both counts)."""
    limit = state.limits.max_route_prompts
    width = max(len(state.allowed()), 1)
    if n_prompts * n_policies > limit * width:
        raise ApiError(
            413,
            f"prompts x policies is {n_prompts:,} prompts x {n_policies:,} distinct policies = "
            f"{n_prompts * n_policies:,} values, over the server's limit of {limit * width:,} per request "
            f"(`v0lite serve --max-route-prompts N`, {limit:,}, times the pool's {width} models).",
            param="policies",
            fix=(
                f"send at most {limit * width // n_policies:,} prompts with these {n_policies:,} policies per request "
                "(split the request), or fewer policies."
                if limit * width >= n_policies
                else f"send at most {limit * width:,} policies per request."
            ),
            code="too_many_prompts",
        )


def last_user_text(messages: list) -> tuple[int, str]:
    """The text routed on and its message's index: the last ``role: user`` message's string content, or its
    text parts joined."""
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return i, content
        if isinstance(content, list):
            parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            return i, "\n".join(t for t in parts if isinstance(t, str))
        raise ApiError(
            422,
            f"messages[{i}].content is {type(content).__name__}, not text. Fix: send a string or a list of "
            '{"type": "text", "text": ...} parts.',
            param=f"messages[{i}].content",
            fix="send text content.",
        )
    raise ApiError(
        422,
        'messages has no message with "role": "user" (v0lite routes on the last one). Fix: add a user message.',
        param="messages",
        fix='add a message with "role": "user".',
    )
