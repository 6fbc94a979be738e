"""Tokens and client addresses: who may call, who may read the operator's routes.

The system token is presented as in the reference: an ``Authorization`` header,
when present at all, is the only place looked at (``Bearer <token>``, scheme
case-insensitive); without one, ``access_token`` in the JSON body, then in the
query string. Every configured token is compared in constant time, so neither
which token matched nor how much of it did shows in the timing.

Wrong tokens are counted per client address (:class:`FailedTokens`): past the
limit, the address gets 429 without its token being compared at all, so a
token cannot be guessed at wire speed. The client address is the socket peer,
or, when the peer is a trusted proxy (``WRAPGATE_FORWARDED_ALLOW_IPS``), the
nearest address in ``X-Forwarded-For`` that is not a trusted proxy: a client
cannot name its own address.

``/metrics`` and ``/openapi.json`` (:class:`OpsAccess`) need the metrics token
when one is set; without one they are served to loopback clients only, unless
the operator opens them on purpose (``WRAPGATE_METRICS_OPEN``).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigurationError, GatewayError
from .scrub import RECENT

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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


# -- client addresses -----------------------------------------------------------------


def trusted_networks(spec: Iterable[str]) -> tuple[IPNetwork, ...] | None:
    """Parsed ``WRAPGATE_FORWARDED_ALLOW_IPS`` entries (addresses or networks);
    None for ``*`` (every peer is a trusted proxy)."""
    networks = []
    for entry in spec:
        if entry == "*":
            return None
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"WRAPGATE_FORWARDED_ALLOW_IPS: {entry!r} is not an address, a network or '*'"
            ) from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    return getattr(address, "ipv4_mapped", None) or address


class ClientAddress:
    """The address a request came from, proxies trusted only as configured."""

    def __init__(self, trusted: Iterable[str] = ("127.0.0.1", "::1")):
        self._trusted = trusted_networks(trusted)

    def _is_trusted(self, address: Any) -> bool:
        if self._trusted is None:
            return True
        return address is not None and any(address in network for network in self._trusted)

    def __call__(self, environ: Mapping[str, Any]) -> str:
        peer = str(environ.get("REMOTE_ADDR") or "")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if not forwarded or not self._is_trusted(_address(peer)):
            return peer
        # Right to left: each trusted proxy appended the address it got the request from.
        hops = [hop.strip() for hop in str(forwarded).split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None or not self._is_trusted(address):
                return hop
        return hops[0] if hops else peer


def _key(address: str) -> str:
    """What a client is counted by: its IPv4 address, or its IPv6 /64, since one
    IPv6 host may use any address of its network."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address


class TooManyFailedTokens(GatewayError):
    status = 429
    code = "too_many_failed_tokens"

    def __init__(self, retry_after: int):
        super().__init__(
            "Too many wrong tokens from this address; try again later.",
            headers={"Retry-After": str(retry_after)},
        )


class FailedTokens:
    """Wrong tokens per client address, in fixed windows, in this worker.

    :param limit: wrong tokens an address may present per window (0: no limit).
    :param addresses: most addresses remembered; the longest unseen is forgotten
        first, so a flood from many addresses costs bounded memory.
    """

    def __init__(self, limit: int = 300, window: float = 60.0, addresses: int = 10_000):
        self.limit, self.window, self.addresses = limit, window, addresses
        self._lock = threading.Lock()
        self._counts: OrderedDict[str, list[float]] = OrderedDict()  # key -> [window start, count]

    def counting(self) -> bool:
        """Whether any address has a wrong token on record in this worker (rarely)."""
        return bool(self.limit and self._counts)

    def refuse_if_blocked(self, address: str) -> None:
        if not self.limit:
            return
        now = time.monotonic()
        with self._lock:
            entry = self._counts.get(_key(address))
            if entry is not None and entry[1] >= self.limit and now - entry[0] < self.window:
                raise TooManyFailedTokens(max(1, int(entry[0] + self.window - now + 0.999)))

    def failed(self, address: str) -> None:
        if not self.limit:
            return
        now, key = time.monotonic(), _key(address)
        with self._lock:
            entry = self._counts.get(key)
            if entry is None or now - entry[0] >= self.window:
                entry = self._counts[key] = [now, 0]
            entry[1] += 1
            self._counts.move_to_end(key)
            while len(self._counts) > self.addresses:
                self._counts.popitem(last=False)


# -- tokens -------------------------------------------------------------------------------


class TokenCheck:
    """Accepts any of several tokens (rotation without downtime). Given a request's
    environ, it counts wrong tokens by client address and answers 429 past the limit.
    Every token it knows is masked in all output of the process."""

    def __init__(
        self,
        tokens: Iterable[str],
        failures: FailedTokens | None = None,
        client: ClientAddress | None = None,
    ):
        self._tokens = tuple(t.encode("utf-8") for t in tokens)
        if not self._tokens:
            raise ValueError("at least one token is required")
        RECENT.remember(tokens)
        self._failures = failures
        self._client = client or ClientAddress()

    def __call__(self, token: str | None, environ: Mapping[str, Any] | None = None) -> bool:
        failures = self._failures
        if failures is None or environ is None:
            return self._matches(token)
        address = None
        # The client's address is worked out (proxies, parsing) only when it is needed:
        # some address has wrong tokens on record, or this token is wrong.
        if failures.counting():
            address = self._client(environ)
            failures.refuse_if_blocked(address)
        matched = self._matches(token)
        if not matched:
            failures.failed(address if address is not None else self._client(environ))
        return matched

    def _matches(self, token: str | None) -> bool:
        matched = False
        if token:
            given = token.encode("utf-8", "surrogatepass")
            for known in self._tokens:  # no early exit: every token is compared
                matched |= hmac.compare_digest(given, known)
        return matched


_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class OpsAccess:
    """Who may read ``/metrics`` and ``/openapi.json`` (see the module docstring)."""

    def __init__(self, check: TokenCheck | None, open_to_all: bool, client: ClientAddress):
        self._check, self._open, self._client = check, open_to_all, client

    def require(self, authorization: str | None, environ: Mapping[str, Any]) -> None:
        if self._check is not None:
            if not self._check(presented_token(authorization, None, {}), environ):
                raise GatewayError("Invalid metrics token.", code="unauthorized", status=401)
            return
        if self._open:
            return
        address = _address(self._client(environ))
        if address is None or not any(address in network for network in _LOOPBACK):
            raise GatewayError(
                "This route is served to loopback clients only; the operator opens it with "
                "WRAPGATE_METRICS_TOKEN (or WRAPGATE_METRICS_OPEN).",
                code="forbidden",
                status=403,
            )
