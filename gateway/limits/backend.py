"""What a limiter backend is: the protocol every backend (in-process, the
arbiter's client, Redis) implements, the one error they raise and the constants
the arbiter and its client share. The backends and the arbiter import this
module; the package imports the backends: imports run one way. (The package
never imports the arbiter: gunicorn's master runs it as ``python -m``.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: Called once when a request for a slot has to wait (see :meth:`Backend.acquire`).
OnWait = Callable[[], None] | None
#: A request a service has not granted within this many seconds is waiting for a slot
#: (a grant of a free slot comes back within a round trip, well under a millisecond).
WAIT_REPORTED_AFTER = 0.005
#: longest line of the arbiter's protocol (between the arbiter and its client), in bytes
MAX_LINE = 1024


class Lease(Protocol):
    def release(self) -> None: ...


class Backend(Protocol):
    name: str

    def acquire(
        self,
        key: str,
        level: int,
        wait: float,
        brief: bool = False,
        on_wait: OnWait = None,
    ) -> Lease | None:
        """A slot of ``key``, waiting at most ``wait`` seconds (None when none freed).
        Raises :class:`BackendDown` when the service that counts slots is unreachable.

        ``on_wait``: called once, on the calling thread, when the slot is not granted at
        once and the request waits (a backend that asks a service for it and cannot
        tell a queued request from one on its way: when no grant came within
        :data:`WAIT_REPORTED_AFTER`). A slot granted at once never calls it.

        ``brief``: the slot is held for one request to an external system (a request
        permit), from whatever thread the plugin runs on. The backend need not carry
        it over its own restart (the arbiter's watcher thread), and must not share
        a connection between OS threads (gevent binds a socket to its thread's hub)."""


class BackendDown(Exception):
    """The backend cannot count slots right now (service down, socket gone)."""
