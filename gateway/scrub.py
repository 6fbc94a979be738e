"""Secret hygiene: find a call's secrets and mask them in any text.

The secrets of a call are every scalar under the connection's ``encrypted``
section (found by :class:`gateway.parsed.Connection`), the call's
``bearerToken`` and the system token that authorised it. A plugin that puts a password into an exception message, a
log line or a result's ``errors`` gets it masked before anything leaves the
process: the core runs every such text through :meth:`Scrubber.scrub`.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

MASK = "********"
# Shorter secrets are masked only as whole words, so that a one-letter
# password does not turn every message into asterisks.
_SUBSTRING_MIN = 6


def _scalars(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _scalars(v)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (str, int, float)):
        text = str(value)
        if text:
            yield text


def _forms(secret: str) -> set[str]:
    """The ways a secret shows up in text: as is, URL-encoded (in a DSN) and
    JSON-escaped (in a serialised payload)."""
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        orjson.dumps(secret).decode()[1:-1],
    }
    return {f for f in forms if f}


def call_secrets(encrypted: Any, bearer_token: str | None = None) -> list[str]:
    """Every secret of one call: the scalars under its connection's ``encrypted``
    sections (:attr:`gateway.parsed.Connection.secret_sections`) and its bearer token."""
    found = list(_scalars(encrypted))
    if bearer_token:
        found.append(bearer_token)
    return found


class Scrubber:
    """Masks a fixed set of secrets in strings; falsy when there is nothing to mask."""

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str] = ()):
        forms: set[str] = set()
        for secret in secrets:
            forms |= _forms(secret)
        if not forms:
            self._pattern = None
            return
        # Longest first, so that a secret containing another is masked whole.
        parts = []
        for form in sorted(forms, key=len, reverse=True):
            escaped = re.escape(form)
            parts.append(escaped if len(form) >= _SUBSTRING_MIN else rf"(?<!\w){escaped}(?!\w)")
        self._pattern = re.compile("|".join(parts))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def scrub(self, text: str) -> str:
        if self._pattern is None or not isinstance(text, str):
            return text
        return self._pattern.sub(MASK, text)

    def scrub_errors(self, errors: Any) -> Any:
        """Mask the messages of a list of ``{"code", "message"}`` entries in place."""
        if self._pattern is None or not isinstance(errors, list):
            return errors
        for entry in errors:
            if isinstance(entry, dict):
                for key in ("message", "code"):
                    if isinstance(entry.get(key), str):
                        entry[key] = self.scrub(entry[key])
        return errors


NOTHING = Scrubber()


@functools.lru_cache(maxsize=1024)
def _scrubber(secrets: tuple[str, ...]) -> Scrubber:
    return Scrubber(secrets)


def scrubber_for(encrypted: Any, bearer_token: str | None = None) -> Scrubber:
    """The scrubber of one call; built once per distinct set of secrets, since a
    connection's calls repeat them and compiling the pattern is the costly part."""
    secrets = call_secrets(encrypted, bearer_token)
    return _scrubber(tuple(sorted(set(secrets)))) if secrets else NOTHING
