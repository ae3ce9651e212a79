"""Request models (pydantic) and the one error shape of the HTTP API.

Every error answers ``{"error": {"message", "type", "param", "code", "value", "fix"}}``: OpenAI's
error object (``message``, ``type``, ``param``, ``code``) plus the offending value and the fix, phrased in JSON
field names (the HTTP client's terms). :func:`validation_error` turns pydantic's errors into it,
naming the field as a path (``outcomes[3].score``).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

__all__ = [
    "ApiError",
    "TYPES",
    "RouteRequest",
    "PredictRequest",
    "Outcome",
    "FeedbackRequest",
    "ChatRequest",
    "validation_error",
    "field_path",
    "json_text",
    "json_type",
]

Text = Annotated[StrictStr, Field(min_length=1)]
Score = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
Knob = Annotated[float, Field(strict=True, allow_inf_nan=False)]
INT64_MAX = 2**63 - 1  # the outcome log's step and n are Int64


# OpenAI's error "type" values; by HTTP status where the raiser named none (our own, finer value goes in "code")
TYPES = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "server_error",
)
_TYPE_BY_STATUS = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}

# OpenAI's "code" of an error, by HTTP status, where the raiser named none
_CODES = {
    400: "invalid_json",
    401: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    499: "client_closed_request",
    422: "invalid_value",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "upstream_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP error with the field, the value and the fix (rendered by the app's one handler)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind=None,
        param=None,
        value=None,
        fix=None,
        code=None,
        headers=None,
    ):
        if fix is not None and "Fix:" not in message:  # the message alone always carries the fix
            message = f"{message} Fix: {fix}"
        if fix is None and "Fix:" in message:  # and the error object its own "fix", whoever raised it
            fix = message.partition("Fix:")[2].strip() or None
        super().__init__(message)
        if kind is None:
            kind = _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
        if kind not in TYPES:  # our own finer names belong in "code"
            raise ValueError(f"error type {kind!r} is not one of OpenAI's {TYPES}")
        self.status, self.message, self.kind, self.param, self.value, self.fix = (
            status,
            message,
            kind,
            param,
            value,
            fix,
        )
        self.code = code or _CODES.get(status)
        self.headers = headers

    def body(self) -> dict:
        err = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        if self.value is not None:
            err["value"] = _short(self.value)
        if self.fix is not None:
            err["fix"] = self.fix
        if getattr(self, "errors", None):
            err["errors"] = self.errors
        return {"error": err}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteRequest(_Strict):
    """``POST /v1/route``: one ``prompt`` or a list ``prompts``; optionally another operating point or pool."""

    prompt: Optional[Text] = None
    prompts: Optional[Annotated[list[Text], Field(min_length=1)]] = None
    strategy: Optional[Text] = None
    knob: Optional[Knob] = None
    pool: Optional[Annotated[list[Text], Field(min_length=1)]] = None


class PredictRequest(_Strict):
    """``POST /v1/predict``: success probabilities of policies (default: the pool) on prompt(s)."""

    prompt: Optional[Text] = None
    prompts: Optional[Annotated[list[Text], Field(min_length=1)]] = None
    policy: Optional[Text] = None
    policies: Optional[Annotated[list[Text], Field(min_length=1)]] = None


class Outcome(_Strict):
    """One feedback row: ``score`` in [0, 1] of ``policy`` on ``prompt`` (a success rate over ``n`` tries)."""

    policy: Text
    prompt: Text
    score: Score
    step: Optional[Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]] = None
    n: Optional[Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]] = None


class FeedbackRequest(_Strict):
    """``POST /v1/feedback``: a batch of outcomes, stored all or none.

    ``new_policies`` names the models of the batch the server does not know yet (neither in the
    value model's history nor in the upstreams file): a name outside all three is read as a typo.
    """

    outcomes: Annotated[list[Outcome], Field(min_length=1)]
    new_policies: Optional[list[Text]] = None


class ChatRequest(BaseModel):
    """The fields of a chat completion the service reads; every other field is forwarded as is."""

    model_config = ConfigDict(extra="allow")
    model: Text
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    stream: Optional[StrictBool] = None  # JSON true/false, or null (= false, as OpenAI reads it)


def field_path(loc) -> str:
    """``('body', 'outcomes', 3, 'score')`` -> ``outcomes[3].score``."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _short(value: Any, limit: int = 80) -> Any:
    """The value as the client sent it (a JSON value); long ones as the start of their JSON text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # NaN and inf have no JSON form
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    if len(text) <= limit:
        return value
    return value[: limit - 3] + "..." if isinstance(value, str) else text[: limit - 3] + "..."


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (``object``, ``array``, ``string``, ``number``, ``boolean``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def json_text(value: Any) -> str:
    """``value`` as JSON text for a message (``"high"``, ``true``, ``null``), not Python's repr."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _fix(err: dict, field: str) -> str:
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind == "missing":
        return f'add "{field}" to the body.'
    if kind == "extra_forbidden":
        return f'remove "{field}" (this endpoint does not take it).'
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f'send "{field}" as a finite JSON number.'
    if kind in ("bool_type", "bool_parsing"):
        return f'send "{field}" as JSON true or false (or null).'
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f'send "{field}" as a JSON integer.'
    if kind in ("string_type", "string_too_short"):
        return f'send "{field}" as a non-empty JSON string.'
    if kind in ("list_type", "too_short"):
        return f'send "{field}" as a non-empty JSON list.'
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        lo, hi = ctx.get("ge", ctx.get("gt")), ctx.get("le", ctx.get("lt"))
        if field.endswith("score"):
            return f'send "{field}" in [0, 1] (a success rate: 1 = success, 0 = failure).'
        bound = f">= {lo}" if lo is not None else f"<= {hi}"
        if lo is not None and hi is not None:
            bound = f">= {lo} and <= {hi}"
        return f'send "{field}" {bound}.'
    if kind in ("json_invalid", "model_attributes_type", "dict_type", "model_type"):
        return "send a JSON object as the body, with Content-Type: application/json."
    return f'correct "{field}" ({err.get("msg", "invalid")}).'


def validation_error(errors: list[dict]) -> ApiError:
    """One :class:`ApiError` from pydantic's error list: the first error named, all of them listed."""
    items = []
    for err in errors:
        field = field_path(err.get("loc", ()))
        items.append({"param": field, "value": _short(err.get("input")), "fix": _fix(err, field), "msg": err["msg"]})
    first = items[0]
    bad_json = errors[0].get("type") == "json_invalid"
    if bad_json:
        message = f"the body is not valid JSON ({errors[0].get('msg')}). Fix: {first['fix']}"
    else:
        message = f"{first['param']}: {first['msg']} (got {json_text(first['value'])}). Fix: {first['fix']}"
        if len(items) > 1:
            message += f" ({len(items)} errors in all, listed in error.errors.)"
    e = ApiError(400 if bad_json else 422, message, param=first["param"], value=first["value"], fix=first["fix"])
    e.errors = items[:20]
    return e
