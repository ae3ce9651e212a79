"""API keys: read the key file, check a request's bearer token in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

from ..exceptions import DataError

__all__ = ["read_api_keys", "KeyChecker"]


def read_api_keys(path, *, flag: str = "--api-keys") -> list[str]:
    """The keys of file ``path``: one a line; blank lines and lines starting with ``#`` (comments) are skipped.

    A key must be printable ASCII, at least 16 characters, without spaces; the first line breaking a rule
    is named (never the key).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{flag} {path}: is not a file. Fix: pass a file with one key a line.")
    keys = []
    try:
        text = p.read_text("utf-8-sig")  # a UTF-8 BOM (Windows editors write one) is not part of the first key
    except UnicodeDecodeError as exc:
        raise DataError(f"{flag} {path}: is not UTF-8 text ({exc.reason}). Fix: write one ASCII key a line.") from None
    for i, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if not key.isascii():
            # clients send the header as ASCII (latin-1 at most): such a key could never match
            raise DataError(
                f"{flag} {path}: line {i}: the key holds non-ASCII characters, which an Authorization header "
                'cannot carry reliably. Fix: use an ASCII key, e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`.'
            )
        if not key.isprintable():  # a tab too: one inside a key is a control character as well
            # DEL or a control character: accepted here, the key could never authenticate, since the HTTP server
            # answers a header holding one 400 before the app sees it
            bad = next(c for c in key if not c.isprintable())
            raise DataError(
                f"{flag} {path}: line {i}: the key holds a control character (U+{ord(bad):04X}), which an "
                "Authorization header cannot carry (the server would answer 400). Fix: use printable ASCII only, "
                'e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`.'
            )
        if any(c.isspace() for c in key) or len(key) < 16:
            # the key itself is never printed: only where it is and what is wrong
            raise DataError(
                f"{flag} {path}: line {i}: a key must be at least 16 characters without spaces "
                f'(this one has {len(key)}). Fix: use a long random key, e.g. `python -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`.'
            )
        keys.append(key)
    if not keys:
        raise DataError(
            f"{flag} {path}: holds no key (blank lines and lines starting with # are skipped: comments). "
            "Fix: write one key a line, not starting with #."
        )
    return keys


class KeyChecker:
    """Is ``Authorization: Bearer <key>`` one of the keys? Compared in constant time.

    Every key is compared (no early exit), each with :func:`hmac.compare_digest` over the UTF-8
    bytes, so the time taken does not tell which key, or how much of one, matched.
    """

    def __init__(self, keys):
        self._keys = [k.encode("utf-8") for k in keys]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def check(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        given = token.strip().encode("utf-8") if scheme.lower() == "bearer" else b""
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        return ok and bool(given)
