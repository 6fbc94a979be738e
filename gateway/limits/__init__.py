"""Per-connection concurrency limits.

Every wrapper call is keyed by its connection (``options.connection._id``); at
most its *level* (1-25) calls of one connection run at once. The level is the
connection's ``concurrencyLevel`` when the call carries one, else the level
configured for that connection id, else the default (5, integrator.io's own).

Backends count slots where the deployment needs them counted:

* ``local`` - across every worker of one host, through the arbiter process the
  gunicorn master starts (:mod:`gateway.limits.arbiter`); a slot lives on a
  socket of its worker (one a worker shares between its calls, or one per
  permit), so the kernel frees it when a worker dies. In a process without gunicorn
  (``wrapgate call``, an embedded app) slots are counted in the process.
* ``redis`` - across hosts, with leases that expire unless renewed
  (:mod:`gateway.limits.redis_backend`).
* ``none`` - no per-connection limit.

A call over its connection's limit waits, first come first served, up to
``limit_wait`` seconds, then gets 429 ``concurrency_limit_exceeded`` with
``Retry-After``. Waiting blocks on a socket, never spins. Besides, each worker
caps its calls in flight (``max_in_flight``) and answers 503 past it.

Request permits (:meth:`Limiter.permit`, offered to plugins as
``context.permit()``): a call that sends several requests at once to the
external system (an import's records) would multiply the level. A permit is a
slot of a second key per connection, ``<connection id>:requests``, sized to the
same level and counted by the same backend, so the requests of all the calls
of a connection, on every worker and host, stay within its level.

Why this cannot deadlock: permits count requests only, apart from the calls'
slots, and a permit is held for one request and never while waiting for
anything else (another permit, a call slot). Whoever holds a permit is sending
a request that ends (the call's deadline bounds it), so every waiter is
eventually served. A call's first request is *not* free on account of its
call slot: that would let ``level`` calls each send one request on top of the
permits held by others (up to twice the level). The cost is that a call may
wait for a permit held by another call of its connection: it waits at most its
remaining deadline, then gets 429, and integrator.io retries. A plugin must not
take a permit while holding one (at level 1 it would wait for itself).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import deadline
from ..config import MAX_LEVEL, Settings
from ..errors import (
    ConcurrencyLimitExceeded,
    DeadlineExceeded,
    InvalidRequest,
    LimiterUnavailable,
    Overloaded,
)
from .backend import Backend, BackendDown, Lease, OnWait
from .local import ArbiterBackend, InProcessBackend

if TYPE_CHECKING:
    from ..parsed import Connection

__all__ = ["Backend", "BackendDown", "Lease", "Limiter", "Notify", "Overloaded", "build"]

log = logging.getLogger("gateway.limits")


#: how the limiter reports slots: :meth:`gateway.plugins.Registry.notify`, which fires
#: the ``wrapgate_slot_*`` hooks (the core's metrics are a plugin of them)
Notify = Callable[..., None]


def _nobody(hook: str, **arguments: Any) -> None:
    """No plugins to tell (a limiter built without a registry)."""


class Limiter:
    """What :class:`gateway.calls.Gateway` calls around every plugin call.

    Waiting, running and rejected calls are reported through ``notify`` as the
    hooks ``wrapgate_slot_waiting``, ``wrapgate_slot_running`` and
    ``wrapgate_slot_rejected`` (:mod:`gateway.hookspecs`).
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None,
        fallback: Backend | None = None,
        notify: Notify = _nobody,
    ):
        self.settings = settings
        self.backend = backend
        self.fallback = fallback
        self.notify = notify
        self._in_flight = _Cap(settings.in_flight_cap)
        self._capped: set[str] = set()

    def level(self, connection_id: str, raw: Any) -> int:
        """The level of a connection that sent ``concurrencyLevel`` ``raw`` (None: not sent)."""
        if raw is None:
            return self.settings.levels.get(connection_id, self.settings.default_level)
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
            raise InvalidRequest(
                f"connection.concurrencyLevel must be a whole number from 1 to {MAX_LEVEL}, got {raw!r}."
            )
        if raw > MAX_LEVEL:
            if connection_id not in self._capped:
                self._capped.add(connection_id)
                log.warning(
                    "connection %s asks for concurrency level %s; capped at %s", connection_id, raw, MAX_LEVEL
                )
            return MAX_LEVEL
        return raw

    def level_of(self, connection: Connection) -> int | None:
        """The level this limiter holds ``connection`` to; None when it limits
        nothing (no connection id, or no backend: ``limiter = "none"``).

        :raises InvalidRequest: the connection's ``concurrencyLevel`` is no level.
        """
        if connection.id is None or self.backend is None:
            return None
        return self.level(connection.id, connection.level)

    @contextlib.contextmanager
    def permit(self, connection_id: str, level: int, deadline: float) -> Iterator[None]:
        """One request permit of the connection: a slot of ``<connection_id>:requests``
        sized ``level`` from this limiter's backend (see the module's docstring),
        waited for until ``deadline`` (a ``time.monotonic()`` value) at most.

        :raises ConcurrencyLimitExceeded: no permit came free before the deadline (429).
        :raises LimiterUnavailable: the backend is down and ``limiter_failure`` is
            ``closed`` (503); with ``local`` the permit is counted in this process.
        """
        if self.backend is None:
            yield
            return
        key = f"{connection_id}:requests"
        wait = max(0.0, deadline - time.monotonic())
        lease = self._lease(self.backend, key, level, wait, brief=True)
        if lease is None:
            raise ConcurrencyLimitExceeded(
                f"Connection {connection_id} already has {level} requests in flight (its "
                f"concurrency level) and none finished before the call's deadline.",
                retry_after=1,
            )
        try:
            yield
        finally:
            lease.release()

    @contextlib.contextmanager
    def __call__(self, connection: Connection) -> Iterator[None]:
        if not self._in_flight.take():
            raise Overloaded(
                f"This gateway worker already runs {self.settings.in_flight_cap} calls; retry shortly.",
                headers={"Retry-After": "1"},
            )
        try:
            key, backend = connection.id, self.backend
            if key is None or backend is None:
                yield  # hooks and utilities have no connection to limit
                return
            level = self.level(key, connection.level)
            lease = self._acquire(backend, key, level)
            self.notify("wrapgate_slot_running", connection_id=key, delta=1)

            def finish() -> None:
                self.notify("wrapgate_slot_running", connection_id=key, delta=-1)
                lease.release()

            later = False
            try:
                yield
            except DeadlineExceeded as exc:
                # Answered 504, but the plugin's call still runs: it keeps its slot until it ends.
                later = deadline.after_abandoned(exc, finish)
                raise
            finally:
                if not later:
                    finish()
        finally:
            self._in_flight.give()

    def _acquire(self, backend: Backend, key: str, level: int) -> Lease:
        wait = self.settings.limit_wait
        waited = False

        def waiting() -> None:
            # Only a call that really waits is reported: a slot granted at once is not.
            # Once: the backend and then its fallback (the backend went down) may both call.
            nonlocal waited
            if not waited:
                waited = True
                self.notify("wrapgate_slot_waiting", connection_id=key, delta=1)

        try:
            lease = self._lease(backend, key, level, wait, on_wait=waiting)
        finally:
            if waited:
                self.notify("wrapgate_slot_waiting", connection_id=key, delta=-1)
        if lease is None:
            self.notify("wrapgate_slot_rejected", connection_id=key)
            raise ConcurrencyLimitExceeded(
                f"Connection {key} already runs {level} calls (its concurrency level) and none "
                f"finished within {wait:g} seconds.",
                retry_after=max(1, math.ceil(wait)),
            )
        return lease

    def _lease(
        self,
        backend: Backend,
        key: str,
        level: int,
        wait: float,
        brief: bool = False,
        on_wait: OnWait = None,
    ) -> Lease | None:
        """A slot of ``key`` from ``backend``, by the ``limiter_failure`` policy when it is down."""
        try:
            return backend.acquire(key, level, wait, brief=brief, on_wait=on_wait)
        except BackendDown as exc:
            if self.settings.limiter_failure != "local" or self.fallback is None:
                log.error("%s limiter unavailable, refusing the call: %s", backend.name, exc)
                raise LimiterUnavailable(
                    "The concurrency limiter is unavailable; retry shortly.", headers={"Retry-After": "5"}
                ) from None
            log.error("%s limiter unavailable, limiting in this process only: %s", backend.name, exc)
            return self.fallback.acquire(key, level, wait, brief=brief, on_wait=on_wait)


class _Cap:
    """At most ``size`` calls in flight in this worker, taken without waiting: past it a
    call is refused (503), never queued. A counter under a lock does it; a
    ``BoundedSemaphore``'s condition variable cost about 2% of a ping under gevent."""

    __slots__ = ("_free", "_lock")

    def __init__(self, size: int):
        self._free = size
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._free <= 0:
                return False
            self._free -= 1
            return True

    def give(self) -> None:
        with self._lock:
            self._free += 1


def build(settings: Settings, notify: Notify = _nobody) -> Limiter:
    """The limiter the settings ask for, reporting its slots through ``notify``
    (:meth:`gateway.plugins.Registry.notify`)."""
    in_process = InProcessBackend()
    if settings.limiter == "none":
        return Limiter(settings, None, notify=notify)
    if settings.limiter == "redis":
        from .redis_backend import RedisBackend  # only with the redis extra installed

        backend: Backend = RedisBackend(settings.redis_url or "", settings.lease_seconds)
        return Limiter(settings, backend, in_process, notify)
    if settings.limiter_socket:
        return Limiter(settings, ArbiterBackend(settings.limiter_socket), in_process, notify)
    if "gunicorn.arbiter" in sys.modules:
        # Under gunicorn without our configuration no arbiter was started: each
        # worker would count alone, and a connection could run level x workers calls.
        log.warning(
            "local limiter without its arbiter: limits count per worker process. Run gunicorn "
            "with -c config/gunicorn.conf.py (or WRAPGATE_WORKERS=1), or use the redis limiter"
        )
    return Limiter(settings, in_process, notify=notify)
