"""The system token: where a call presents it and how it is checked.

As in the reference: an ``Authorization`` header, when present at all, is the
only place looked at (``Bearer <token>``, scheme case-insensitive); without one,
``access_token`` in the JSON body, then in the query string. Every configured
token is compared in constant time, so neither which token matched nor how
much of it did shows in the timing.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any


def presented_token(authorization: str | None, body: Any, query: Mapping[str, str]) -> str | None:
    if authorization:
        parts = authorization.split(" ")
        if len(parts) == 2 and parts[0].lower() == "bearer":
            return parts[1]
        return None
    if isinstance(body, dict):
        token = body.get("access_token")
        if token:
            return token if isinstance(token, str) else None
    token = query.get("access_token")
    return token or None


class TokenCheck:
    """Accepts any of several tokens (rotation without downtime)."""

    def __init__(self, tokens: Iterable[str]):
        self._tokens = tuple(t.encode("utf-8") for t in tokens)
        if not self._tokens:
            raise ValueError("at least one token is required")

    def __call__(self, token: str | None) -> bool:
        if not token:
            return False
        given = token.encode("utf-8", "surrogatepass")
        matched = False
        for known in self._tokens:  # no early exit: every token is compared
            matched |= hmac.compare_digest(given, known)
        return matched
