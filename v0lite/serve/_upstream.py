"""Upstreams: the OpenAI-compatible servers behind the pool's models, and the async client that calls them.

The upstreams file maps each pool model to ``{"base_url", "model", "api_key_env", "price"}``
(``api_key_env`` and ``price`` optional: a local server needs no key). Keys are read from the
environment once, at start, and never logged, echoed or put in an error message.

One :class:`httpx.AsyncClient` with pooled connections and timeouts serves every call. A
response is either read whole (its ``model`` field renamed to the pool model) or, with
``stream: true``, its bytes are passed through unchanged. A streamed call asks for
``Accept-Encoding: identity``, since the bytes reach the client without the upstream's headers;
an upstream that compresses anyway is decoded (:meth:`UpstreamClient.stream_bytes`).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..exceptions import DataError

__all__ = ["Upstream", "UpstreamFailure", "UpstreamClient", "OpenStream", "read_upstreams", "relay"]

_FIELDS = ("base_url", "model", "api_key_env", "price")


@dataclass(frozen=True)
class Upstream:
    """One pool model's upstream (the key is held but never shown by ``repr``)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    price: float | None = None
    _key: str | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def headers(self) -> dict:
        h = {"content-type": "application/json"}
        if self._key:
            h["authorization"] = f"Bearer {self._key}"
        return h

    def scrub(self, text: str) -> str:
        """``text`` with this upstream's key blanked (an upstream may echo it in an error)."""
        return text.replace(self._key, "***") if self._key else text


def read_upstreams(source, *, flag: str = "--upstreams") -> dict[str, Upstream]:
    """Parse and check an upstreams mapping (a JSON file path, or the dict itself).

    Every problem names the model, the field, the value and the fix; a missing environment
    variable is named, never guessed.
    """
    if isinstance(source, dict):
        spec, where = source, "upstreams"
    else:
        p = Path(source)
        if not p.is_file():
            raise DataError(
                f"{flag} {source}: is not a file. Fix: pass a JSON file mapping each model to its upstream."
            )
        from ..log import read_text  # as --api-keys and the logs: a UTF-8 BOM dropped, UTF-16 named

        try:
            text = read_text(p)
        except DataError as exc:
            raise DataError(f"{flag} {exc}") from None
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{flag} {source}: is not valid JSON ({exc}). Fix: write a JSON object.") from exc
        where = f"{flag} {source}"
    example = '{"model-a": {"base_url": "http://127.0.0.1:8001/v1", "model": "name-upstream", "api_key_env": "KEY_A"}}'
    if not isinstance(spec, dict) or not spec:
        raise DataError(f"{where}: must be a non-empty JSON object. Fix: write e.g. {example}.")
    out = {}
    for name, entry in spec.items():
        if not isinstance(entry, dict):
            raise DataError(f"{where}: model {name!r}: {entry!r:.60} is not an object. Fix: write e.g. {example}.")
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise DataError(f"{where}: model {name!r}: unknown field {unknown[0]!r}. Fix: use only {list(_FIELDS)}.")
        base = entry.get("base_url")
        u = urlparse(base) if isinstance(base, str) else None
        if u is None or u.scheme not in ("http", "https") or not u.netloc:
            raise DataError(
                f"{where}: model {name!r}: base_url {base!r} is not an http(s) URL. "
                'Fix: give the server\'s OpenAI base URL, e.g. "http://127.0.0.1:8001/v1".'
            )
        model = entry.get("model", name)
        if not isinstance(model, str) or not model:
            raise DataError(f"{where}: model {name!r}: model {model!r} is not a name. Fix: give the upstream's name.")
        env = entry.get("api_key_env")
        key = None
        if env is not None:
            if not isinstance(env, str) or not env:
                raise DataError(f"{where}: model {name!r}: api_key_env {env!r} is not a variable name.")
            key = os.environ.get(env)
            if not key:
                raise DataError(
                    f"{where}: model {name!r}: environment variable {env} is not set. Fix: export {env}=<key> "
                    "before starting, or drop api_key_env for a server that needs no key."
                )
        price = entry.get("price")
        if price is not None and (
            isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0
        ):
            raise DataError(f"{where}: model {name!r}: price {price!r} is not a cost >= 0. Fix: USD per call.")
        out[str(name)] = Upstream(str(name), base, model, env, None if price is None else float(price), key)
    return out


class UpstreamFailure(Exception):
    """An upstream call failed: ``status`` (None for no answer), one line of reason, and ``label``.

    ``label`` is the metric's reason: the status for a non-2xx answer, ``timeout``, ``no_answer``
    (refused or reset connection), ``bad_json`` (a 2xx answer that is not a strict JSON object:
    ``NaN`` and ``Infinity`` are not JSON, a number such as ``1e400`` overflows, a lone surrogate escape is
    no text),
    ``cut_off`` (an answer that broke while read), ``stream_cut`` (a stream that broke mid-way),
    ``not_a_stream`` (a 2xx answer to a streamed call that is not an event stream).

    A non-2xx answer also keeps its ``body`` (the upstream's error object, the key blanked; None if
    it is not a JSON object) and its ``retry_after`` header.
    """

    def __init__(
        self,
        model: str,
        status: int | None,
        reason: str,
        *,
        label: str | None = None,
        body: dict | None = None,
        retry_after: str | None = None,
    ):
        super().__init__(f"upstream {model!r} {'answered ' + str(status) if status else 'failed'}: {reason}")
        self.model, self.status, self.reason = model, status, reason
        self.label = label or (str(status) if status else "no_answer")
        self.body, self.retry_after = body, retry_after


class NotStrictJson(ValueError):
    """Valid to Python's json, not to a strict JSON reader: the reason names what the answer holds."""


def ignored_prices(ups: dict[str, Upstream], router, source) -> list[str]:
    """One message per upstream ``"price"`` the service will not use: the model is already in the router's pool.

    A pool model's cost comes from the router (its cost model, or the price it joined at); the
    upstream price only prices a model that joins through feedback. A price equal to the router's
    fixed one changes nothing and is not named.
    """
    fixed = dict(router.prices or {}) if getattr(router, "cost_model", None) == "fixed" else {}
    fixed.update(getattr(router, "added_prices_", {}) or {})
    where = "the upstreams" if isinstance(source, dict) else f"--upstreams {source}"
    out = []
    for name, up in ups.items():
        if up.price is None or name not in router.policies_ or fixed.get(name) == up.price:
            continue
        out.append(
            f'{where}: model {name!r} has "price": {up.price:g}, but it is already in the router\'s pool, which '
            "prices it from its own cost model: this price is ignored (an upstream price prices only a model that "
            "joins through feedback). Fix: to change a pool model's price, reprice the router, "
            "Router.load(d).set_prices(prices).save(d2) with prices for every pool model, then serve d2 "
            '(`v0lite serve --router d2`); or drop "price" from this entry.'
        )
    return out


def _no_constant(name: str):
    raise NotStrictJson(f"the answer holds {name}, which is not JSON")


def _overflow(text: str):
    shown = text if len(text) <= 40 else text[:37] + "..."
    return NotStrictJson(f"the answer holds the number {shown}, which overflows a double")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):  # 1e400: valid JSON syntax, but no number a client could read back
        raise _overflow(text)
    return v


_MAX_DOUBLE = int(sys.float_info.max)


def _finite_int(text: str) -> int:
    v = int(text)  # over 4,300 digits: Python's own ValueError
    if abs(v) > _MAX_DOUBLE:
        raise _overflow(text)
    return v


def strict_json(data: bytes | str):
    """``json.loads`` without Python's extensions: ``NaN``, ``Infinity`` and ``-Infinity`` raise ``ValueError``
    (the answer could not be sent on as JSON), as does a number that overflows a double (``1e400``)."""
    return json.loads(data, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_finite_int)


def _error_object(up: Upstream, body: bytes) -> dict | None:
    """A non-2xx answer's body as a JSON object (the key blanked), or None."""
    try:
        obj = strict_json(up.scrub(body.decode("utf-8", "replace")))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _reason(up: Upstream, body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        err = err.get("message", err) if isinstance(err, dict) else err
        text = err if isinstance(err, str) else json.dumps(err)
    except ValueError:
        pass
    line = " ".join(up.scrub(text).split())
    return (line[:197] + "...") if len(line) > 200 else (line or "(empty body)")


class UpstreamClient:
    """Pooled async calls to the upstreams.

    Parameters
    ----------
    timeout_s : float
        Connect timeout, and read timeout between two chunks of an answer (a stream may last
        longer in all).
    max_connections : int
        Connections kept across all upstreams.
    """

    def __init__(self, *, timeout_s: float = 60.0, max_connections: int = 100):
        import httpx

        self._httpx = httpx
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,  # never route upstream traffic (and keys) through a proxy from the environment
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def open(self, up: Upstream, body: dict, *, stream: bool):
        """Send ``body`` (its model set to the upstream's) and return the open 2xx response.

        Raises :class:`UpstreamFailure` on no answer or a non-2xx answer (read and closed).
        """
        httpx = self._httpx
        payload = json.dumps({**body, "model": up.model}).encode("utf-8")
        headers = up.headers()
        if stream:  # the bytes are passed through without the upstream's content-encoding: ask for none
            headers["accept-encoding"] = "identity"
        try:
            req = self.client.build_request("POST", up.url, content=payload, headers=headers)
            resp = await self.client.send(req, stream=True)
        except httpx.TimeoutException:
            raise UpstreamFailure(up.name, None, "timed out", label="timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(up.name, None, f"no answer ({type(exc).__name__})") from None
        if not 200 <= resp.status_code < 300:
            try:
                data = await resp.aread()
            except httpx.HTTPError:
                data = b""
            finally:
                await resp.aclose()
            raise UpstreamFailure(
                up.name,
                resp.status_code,
                _reason(up, data),
                body=_error_object(up, data),
                retry_after=resp.headers.get("retry-after"),
            )
        if stream:
            return await OpenStream.check(up, resp, self.stream_bytes(resp))
        try:
            data = await resp.aread()
        except httpx.HTTPError as exc:
            raise UpstreamFailure(
                up.name, resp.status_code, f"answer cut off ({type(exc).__name__})", label="cut_off"
            ) from None
        finally:
            await resp.aclose()
        try:
            obj = strict_json(data)
        except ValueError as exc:
            why = str(exc) if isinstance(exc, NotStrictJson) else "the answer is not JSON"
            raise UpstreamFailure(up.name, resp.status_code, why, label="bad_json") from None
        if not isinstance(obj, dict):
            raise UpstreamFailure(up.name, resp.status_code, "the answer is not a JSON object", label="bad_json")
        return obj

    @staticmethod
    def stream_bytes(resp):
        """The body of an open streamed answer as the client must get it: raw, or decoded if compressed anyway."""
        encoding = resp.headers.get("content-encoding", "identity").strip().lower()
        return resp.aiter_raw() if encoding in ("", "identity") else resp.aiter_bytes()


_SSE_START = (b"data:", b":", b"event:", b"id:", b"retry:")


class OpenStream:
    """An upstream's open 2xx answer to a streamed call, checked to be an event stream before it is passed on."""

    def __init__(self, resp, chunks, first: bytes):
        self.status_code, self.headers, self._resp = resp.status_code, resp.headers, resp
        self._chunks, self._first = chunks, first

    @classmethod
    async def check(cls, up: Upstream, resp, chunks) -> "OpenStream":
        """Raise :class:`UpstreamFailure` (``not_a_stream``) for a 2xx answer that is no event stream
        (a JSON body, say): the next-best model is then tried, before any byte reached the client."""
        import httpx

        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        first = b""
        try:
            if ctype != "text/event-stream":
                async for chunk in chunks:
                    first += chunk
                    if first.lstrip():
                        break
        except httpx.HTTPError:
            pass  # cut before its first event: told below, as no event stream
        if ctype != "text/event-stream" and not first.lstrip().startswith(_SSE_START):
            await resp.aclose()
            shown = " ".join(up.scrub(first[:60].decode("utf-8", "replace")).split()) or "(empty body)"
            raise UpstreamFailure(
                up.name,
                resp.status_code,
                f"asked to stream, it answered {ctype or 'no content-type'} ({shown}), not an event stream",
                label="not_a_stream",
            )
        return cls(resp, chunks, first)

    async def aiter(self):
        if self._first:
            yield self._first
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        await self._resp.aclose()


_DONE = re.compile(rb"(^|\n)data: ?\[DONE\]\s*$")
_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


def _boundary(buf: bytes) -> int:
    """The end of the last complete event in ``buf`` (0: none)."""
    return max((buf.rfind(sep) + len(sep) if sep in buf else 0) for sep in _BOUNDARIES)


async def relay(state, res: OpenStream, name: str, scope, log):
    """The upstream's stream, byte for byte, passed on event by event. A break mid-way, or an end without
    ``data: [DONE]``, ends it with an SSE error event (as OpenAI does); the bytes of an event the break
    cut in two are not passed on (an SSE client drops an unfinished event anyway), so the error event
    parses on its own."""
    import httpx

    from ._models import ApiError

    held, tail, label, why = b"", b"", None, ""
    try:
        try:
            async for chunk in res.aiter():
                held += chunk
                cut = _boundary(held)
                if cut:
                    tail = (tail + held[:cut])[-64:]
                    yield held[:cut]
                    held = held[cut:]
            if _DONE.search((tail + held).replace(b"\r\n", b"\n")):
                if held:
                    yield held
                return
            label, why = "stream_cut", "it ended without data: [DONE]"
        except httpx.HTTPError as exc:
            label = "stream_timeout" if isinstance(exc, httpx.TimeoutException) else "stream_cut"
            why = type(exc).__name__
        state.metrics.upstream_errors.labels(name, label).inc()
        scope.get("v0lite.status", {})["code"] = 502  # the metrics count it as the failure it is
        log.warning("v0lite serve: upstream %r broke off a stream (%s); sent an error event", name, label)
        err = ApiError(
            502,
            f"upstream {name!r} broke off the stream ({why}); the answer above is incomplete.",
            code=label,
            param="model",
            value=name,
            fix="retry the request.",
        )
        yield b"data: " + json.dumps(err.body()).encode("utf-8") + b"\n\n"
    finally:
        await res.aclose()
