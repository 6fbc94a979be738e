"""Secret hygiene: find a call's secrets and mask them in any text or structure.

The secrets of a call are the string values under the connection's
``encrypted`` section (top level, or under ``wrapper`` as integrator.io's
connection resource nests it: :class:`gateway.parsed.Connection` knows where)
and the call's ``bearerToken``; the system
tokens are secrets of every call. A plugin that puts a password into an
exception, a log line, a print or a result's ``errors`` gets it masked
before anything leaves the process.

What counts as a secret: a string of at least :data:`MIN_SECRET_LENGTH`
characters. Shorter values (``"eu"``, ``"true"``) and numbers are settings
someone filed under ``encrypted``; masking them would turn ordinary words of
every message into asterisks, so they are not masked. A call with more than
:data:`MAX_SECRETS` secrets, or more than :data:`MAX_SECRET_CHARS` characters
of them, is refused (``too_many_secrets``, 422): masking costs time per
secret, and one call must not stall a worker.

Each secret is masked in the forms it takes in text: as is, URL-encoded (a
DSN), JSON-escaped (a serialised payload, ASCII-only or not) and base64
(standard and URL-safe alphabets, at any byte offset, as in a Basic
``Authorization`` header). Matching uses one Aho-Corasick automaton for all
forms, so the cost of a scan does not grow with the number of secrets.

What is scrubbed in results (:func:`scrub_result`): every string inside error
structures (ping results, an export's ``errors``, a failed import entry).
An export's ``data`` and ``state`` and a successful import entry's ``id``
are the plugin's data, passed on unchanged: masking them would silently
change records integrator.io writes on.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import ahocorasick_rs
import orjson

from .errors import GatewayError

if TYPE_CHECKING:
    from .parsed import Connection

MASK = "********"
#: Shorter strings are not treated as secrets (see the module docstring).
MIN_SECRET_LENGTH = 6
#: Most distinct secrets one call may carry, and most characters all of them may have.
MAX_SECRETS = 128
MAX_SECRET_CHARS = 64 * 1024
#: Most distinct secrets of recent calls kept for masking output made outside any call.
RECENT_SECRETS = 512


class TooManySecrets(GatewayError):
    code = "too_many_secrets"

    def __init__(self) -> None:
        super().__init__(
            f"options.connection.encrypted holds more than {MAX_SECRETS} secrets or "
            f"{MAX_SECRET_CHARS} characters of them; the gateway masks every secret in "
            "everything it emits, and refuses calls it cannot mask quickly."
        )


def _strings(value: Any) -> Iterator[str]:
    """Every string scalar under ``value``; iterative, so no nesting depth overflows."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _base64_cores(data: bytes) -> Iterator[str]:
    """The part of ``data``'s base64 text that is the same wherever ``data`` sits in
    a longer byte string: one per byte offset modulo 3, both alphabets."""
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode().rstrip("=")
        # Characters that carry bits of the bytes before or after the secret vary.
        start = -(-offset * 8 // 6)
        end = len(encoded) - (1 if (offset + len(data)) % 3 else 0)
        core = encoded[start:end]
        if len(core) >= MIN_SECRET_LENGTH:
            yield core
            yield core.replace("+", "-").replace("/", "_")


def forms(secret: str) -> set[str]:
    """The ways a secret shows up in text."""
    found = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        orjson.dumps(secret).decode()[1:-1],
        json.dumps(secret)[1:-1],  # ensure_ascii, as the standard library writes JSON
    }
    found.update(_base64_cores(secret.encode("utf-8", "surrogatepass")))
    return {f for f in found if len(f) >= MIN_SECRET_LENGTH}


def call_secrets(connection: Connection, bearer_token: str | None = None) -> list[str]:
    """Every secret of one call (strings of masking length, distinct): those of
    every ``encrypted`` section of its parsed connection
    (:attr:`gateway.parsed.Connection.secret_sections`) and its bearer token.

    Raises :class:`TooManySecrets` past the bounds, before any costly work."""
    found: dict[str, None] = {}
    chars = 0
    for text in _strings([*connection.secret_sections, bearer_token]):
        if len(text) < MIN_SECRET_LENGTH or text in found:
            continue
        found[text] = None
        chars += len(text)
        if len(found) > MAX_SECRETS or chars > MAX_SECRET_CHARS:
            raise TooManySecrets()
    return list(found)


class Scrubber:
    """Masks a fixed set of secrets in strings and structures; falsy when it has none."""

    __slots__ = ("_automaton", "secrets")

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = tuple(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH)
        patterns: set[str] = set()
        for secret in self.secrets:
            patterns |= forms(secret)
        self._automaton = (
            ahocorasick_rs.AhoCorasick(
                sorted(patterns),
                # Longest match wins, so a secret containing another is masked whole.
                matchkind=ahocorasick_rs.MatchKind.LeftmostLongest,
                implementation=ahocorasick_rs.Implementation.NoncontiguousNFA,
            )
            if patterns
            else None
        )

    def __bool__(self) -> bool:
        return self._automaton is not None

    def scrub(self, text: Any) -> Any:
        """``text`` with every secret masked; anything not a string is returned as is."""
        if self._automaton is None or not isinstance(text, str):
            return text
        matches = self._automaton.find_matches_as_indexes(text)
        if not matches:
            return text
        parts, position = [], 0
        for _, start, end in matches:
            parts.append(text[position:start])
            parts.append(MASK)
            position = end
        parts.append(text[position:])
        return "".join(parts)

    def finds(self, text: str) -> bool:
        """Whether any form of a secret occurs in ``text``."""
        return self._automaton is not None and bool(self._automaton.find_matches_as_indexes(text))

    def scrub_value(self, value: Any) -> Any:
        """A copy of ``value`` with every string masked: dict keys and values, list
        items, and numbers whose digits are a secret. Other objects are returned as is."""
        if self._automaton is None:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {self.scrub_value(k): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub_value(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = str(value)
            return MASK if self.scrub(text) != text else value
        return value

    def scrub_errors(self, errors: Any) -> Any:
        """Mask every string of ``errors`` (a list is masked in place); returns it."""
        if self._automaton is None:
            return errors
        if isinstance(errors, list):
            errors[:] = [self.scrub_value(entry) for entry in errors]
            return errors
        return self.scrub_value(errors)


NOTHING = Scrubber()


#: kinds whose answer is one entry per record (their ``errors`` are masked; a failed
#: import entry is masked whole)
RECORD_KINDS = frozenset(("import", "preMap", "postMap", "postSubmit", "postResponseMap"))


def scrub_result(kind: str, result: Any, scrubber: Scrubber) -> Any:
    """A checked result of ``kind`` with its error structures masked (see the module
    docstring for what counts as the plugin's data and is left alone)."""
    if not scrubber:
        return result
    if kind == "ping":
        return scrubber.scrub_value(result)
    if kind in ("export", "preSavePage"):
        if isinstance(result, dict) and "errors" in result:
            result = dict(result, errors=scrubber.scrub_value(result["errors"]))
        return result
    if kind not in RECORD_KINDS or not isinstance(result, list):
        return result  # a free-form answer is the plugin's to own
    scrubbed = []
    for entry in result:
        if not isinstance(entry, dict):
            pass
        elif kind == "import" and entry.get("statusCode") != 200:
            entry = scrubber.scrub_value(entry)
        elif "errors" in entry:
            entry = dict(entry, errors=scrubber.scrub_value(entry["errors"]))
        scrubbed.append(entry)
    return scrubbed


class _Recent:
    """Scrubbers of recent calls (cached: a connection's calls repeat their secrets),
    and what masks output made outside any call (a plugin's background thread, a
    stray print): the secrets of recent calls and the process's own tokens.

    Output outside calls is masked by one scrubber of all those secrets plus the
    few built since; that one is rebuilt only every :data:`_REBUILD_AFTER` new
    secret sets, so many new connections do not each pay for a large rebuild."""

    _REBUILD_AFTER = 16

    def __init__(self, size: int = 1024):
        self._lock = threading.Lock()
        self._size = size
        self._scrubbers: OrderedDict[tuple[str, ...], Scrubber] = OrderedDict()
        self.permanent = NOTHING
        self._base = NOTHING
        self._since: list[Scrubber] = []

    def scrubber(self, secrets: list[str]) -> Scrubber:
        key = tuple(sorted(secrets))
        with self._lock:
            found = self._scrubbers.get(key)
            if found is not None:
                self._scrubbers.move_to_end(key)
                return found
        built = Scrubber(key)  # outside the lock: building is the costly part
        with self._lock:
            self._scrubbers[key] = built
            while len(self._scrubbers) > self._size:
                self._scrubbers.popitem(last=False)
            self._since.append(built)
        return built

    def remember(self, secrets: Iterable[str]) -> None:
        """Secrets of the process itself (the system tokens): masked in all output."""
        permanent = Scrubber(dict.fromkeys((*self.permanent.secrets, *secrets)))
        with self._lock:
            self.permanent = permanent
        self._rebuild()

    def outside(self) -> tuple[Scrubber, ...]:
        """The scrubbers of output made outside any call."""
        with self._lock:
            if len(self._since) <= self._REBUILD_AFTER:
                return (self._base, *self._since)
        return self._rebuild()

    def _rebuild(self) -> tuple[Scrubber, ...]:
        with self._lock:
            count = len(self._since)
            secrets = dict.fromkeys(self.permanent.secrets)
            for key in reversed(self._scrubbers):  # the most recent first
                if len(secrets) >= RECENT_SECRETS + len(self.permanent.secrets):
                    break
                secrets.update(dict.fromkeys(key))
        base = Scrubber(secrets)
        with self._lock:
            # Sets added while building are not in it: they stay in `since`.
            self._base, self._since = base, self._since[count:]
            return (self._base, *self._since)


RECENT = _Recent()


def scrubber_for(connection: Connection, bearer_token: str | None = None) -> Scrubber:
    """The scrubber of one call, from its parsed connection and bearer token
    (:class:`gateway.parsed.Call`); raises :class:`TooManySecrets` past the bounds."""
    secrets = call_secrets(connection, bearer_token)
    return RECENT.scrubber(secrets) if secrets else NOTHING
