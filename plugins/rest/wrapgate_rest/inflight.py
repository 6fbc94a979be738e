"""Requests in flight to one API from one connection, bounded by the connection's level.

integrator.io's concurrency level is its promise to the external system: at
most that many requests at once over the connection. The core holds a call of
a connection to the level; a call that sends several requests at once (an
import's records) would multiply it. Every request of every call of one
connection therefore takes a permit sized to the level.

The permit is the core's (``context.permit()``): counted by the gateway's
limiter, across every worker of the host (the arbiter) or every host (Redis),
in the same place as the connection's calls. Only when the core limits nothing
(``context.level`` is None: ``limiter = "none"``, or a core without permits)
does the connector fall back to :data:`GATES`, which counts in this process
alone: calls of one connection served by different worker processes then each
count on their own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.errors import GatewayError

#: integrator.io's own default level, and its cap on a standard licence.
DEFAULT_LEVEL, MAX_LEVEL = 5, 25


class GateTimeout(GatewayError):
    """No slot came free before the call's deadline; integrator.io may retry later."""

    status = 429
    code = "concurrency_limit_exceeded"

    def __init__(self, message: str):
        super().__init__(message, headers={"Retry-After": "1"})


def level_of(connection: Mapping[str, Any] | None, context: Any = None) -> int:
    """The level the core limits the call's connection to, when the call's
    context carries it; else the connection's ``concurrencyLevel`` (the core has
    checked it); else integrator.io's default. Never above the cap."""
    for raw in (getattr(context, "level", None), (connection or {}).get("concurrencyLevel")):
        if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
            return min(raw, MAX_LEVEL)
    return DEFAULT_LEVEL


class Gates:
    """One semaphore per connection id, sized to its current level."""

    def __init__(self) -> None:
        self._gates: dict[str, tuple[int, threading.BoundedSemaphore]] = {}
        self._lock = threading.Lock()

    def gate(self, key: str, level: int) -> threading.BoundedSemaphore:
        with self._lock:
            known = self._gates.get(key)
            # A changed level gets a new gate; requests on the old one release into it.
            if known is None or known[0] != level:
                known = (level, threading.BoundedSemaphore(level))
                self._gates[key] = known
            return known[1]

    @contextlib.contextmanager
    def slot(self, key: str, level: int, wait: float) -> Iterator[None]:
        gate = self.gate(key, level)
        if not gate.acquire(timeout=max(wait, 0.0)):
            raise GateTimeout(
                f"connection {key} already has {level} requests in flight (its concurrency level); "
                f"none finished within {wait:.0f} s"
            )
        try:
            yield
        finally:
            gate.release()


GATES = Gates()
