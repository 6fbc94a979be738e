"""A call's database session: one transaction under the call's deadline.

The deadline reaches the database two ways:

* PostgreSQL stops the statement itself: the transaction sets
  ``statement_timeout`` and ``lock_timeout`` to what is left of the call
  (``context.remaining()``) minus a margin; the database answers ``57014`` /
  ``55P03``, which the call answers as the deadline's 504.
* A watchdog fires a little later, for a database that stopped answering
  (accepts TCP, sends nothing): it shuts the connection's socket down (SQLite:
  interrupts the statement), so the waiting call fails at once as connection
  trouble, and the connection is thrown away, never handed to another call.

The transaction's first statement (the limits above, or ``SELECT 1``) is the
ping: a pooled connection the server closed is replaced once, transparently.
Sessions on PostgreSQL run in UTC, so timestamps without a time zone are UTC.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gateway.errors import ConnectionOffline, DeadlineExceeded

from .engines import connect_budget, fatal

# Below this many seconds left, a call does not start a statement at all.
TOO_LATE = 0.05


def margin(remaining: float) -> float:
    """Time kept between the database's own timeout and the call's deadline."""
    return min(2.0, max(0.05, remaining * 0.2))


class Watchdog:
    """At ``seconds``, cuts the connection the call is waiting on.

    Every watchdog of the process is kept by one shared thread (:class:`_Scheduler`):
    a call starts no thread of its own (starting one, and waiting for it to run, cost
    more than a page of a thousand rows on a busy machine)."""

    def __init__(self, raw: Any, seconds: float | None):
        self.raw = raw
        self.fired = False
        self.done = seconds is None
        if seconds is not None:
            _scheduler().add(self, time.monotonic() + max(0.0, seconds))

    def _fire(self) -> None:
        self.fired = True
        raw = self.raw
        try:
            if hasattr(raw, "interrupt"):  # sqlite3
                raw.interrupt()
                return
            pgconn = getattr(raw, "pgconn", None)  # psycopg 3
            fd = pgconn.socket if pgconn is not None else raw.fileno()
            # A duplicate of the descriptor: shutting it down wakes the waiting reader with EOF.
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # noqa: BLE001 - the connection is already gone: nothing to cut
            pass

    def cancel(self) -> None:
        """After this returns the watchdog never fires (the connection may go back to
        the pool and serve another call)."""
        if not self.done:
            _scheduler().cancel(self)


class _Scheduler:
    """One thread that fires watchdogs at their times. Cancelled watchdogs stay in the
    heap (marked done, their connection let go) until they come to its top."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.ready = threading.Condition()
        self.heap: list[tuple[float, int, Watchdog]] = []
        self.order = itertools.count()
        threading.Thread(target=self._run, name="wrapgate-sql watchdogs", daemon=True).start()

    def add(self, watch: Watchdog, when: float) -> None:
        with self.ready:
            heapq.heappush(self.heap, (when, next(self.order), watch))
            if self.heap[0][2] is watch:  # sooner than the thread sleeps until
                self.ready.notify()

    def cancel(self, watch: Watchdog) -> None:
        # Under the lock: a watchdog being fired finishes first, none fires after.
        with self.ready:
            watch.done, watch.raw = True, None

    def _run(self) -> None:
        with self.ready:
            while True:
                now = time.monotonic()
                while self.heap and (self.heap[0][2].done or self.heap[0][0] <= now):
                    _, _, watch = heapq.heappop(self.heap)
                    if not watch.done:
                        watch.done = True
                        watch._fire()  # a socket shutdown or an interrupt: quick
                self.ready.wait(self.heap[0][0] - now if self.heap else None)


_SCHEDULER: _Scheduler | None = None


def _scheduler() -> _Scheduler:
    global _SCHEDULER
    found = _SCHEDULER
    if found is None or found.pid != os.getpid():  # a forked worker needs a thread of its own
        # Two calls racing here may make two schedulers: each keeps its own watchdogs.
        found = _SCHEDULER = _Scheduler()
    return found


def _prepare(conn: Connection, remaining: float | None, read_only: bool) -> None:
    """The transaction's first statement: its limits, and proof the connection works."""
    name = conn.dialect.name
    if name == "postgresql":
        settings = {"TimeZone": "UTC"}
        if remaining is not None:
            budget = max(1, int((remaining - margin(remaining)) * 1000))
            settings.update(statement_timeout=f"{budget}ms", lock_timeout=f"{budget}ms")
        if read_only:
            settings["transaction_read_only"] = "on"
        calls = ", ".join(f"set_config('{k}', :{k}, true)" for k in settings)
        conn.execute(sa.text(f"SELECT {calls}"), settings)
        return
    if read_only and name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    elif read_only and name in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    conn.exec_driver_sql("SELECT 1")


def _stopped(engine: Engine) -> Exception:
    """What a call the watchdog stopped answers."""
    if engine.dialect.name == "sqlite":  # interrupted: the file is there, the statement was slow
        return DeadlineExceeded("the database did not finish within the call's deadline")
    return ConnectionOffline("the database stopped answering: no answer before the call's deadline")


def _connect(engine: Engine, remaining: float | None, read_only: bool) -> tuple[Connection, Watchdog]:
    for attempt in (1, 2):
        token = connect_budget.set(None if remaining is None else remaining - margin(remaining))
        try:
            conn = engine.connect()
        finally:
            connect_budget.reset(token)
        raw = conn.connection.dbapi_connection
        watch = Watchdog(raw, None if remaining is None else remaining - margin(remaining) / 2)
        try:
            conn.begin()
            _prepare(conn, remaining, read_only)
            return conn, watch
        except DBAPIError as exc:
            watch.cancel()
            conn.close()
            if watch.fired:
                raise _stopped(engine) from None
            # A pooled connection the server closed meanwhile: SQLAlchemy has invalidated
            # the pool's older connections; a fresh one is tried once.
            if attempt == 1 and exc.connection_invalidated:
                continue
            raise
        except BaseException:
            watch.cancel()
            conn.invalidate()
            conn.close()
            raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def session(engine: Engine, context: Any = None, *, read_only: bool = False) -> Iterator[Connection]:
    """A connection in a transaction, committed when the block ends without error.

    Database failures that end the call come out as gateway errors: connection
    trouble as :class:`ConnectionOffline` (or ``CredentialsRefused``), a deadline
    as :class:`DeadlineExceeded`; other ``DBAPIError``\\ s pass through.
    """
    remaining = context.remaining() if context is not None and getattr(context, "deadline", None) else None
    if remaining is not None and remaining < TOO_LATE:
        raise DeadlineExceeded("the call's deadline passed before the database was asked")
    watch: Watchdog | None = None
    conn: Connection | None = None
    try:
        conn, watch = _connect(engine, remaining, read_only)
        try:
            yield conn
            conn.commit()
        except Exception:
            if watch.fired:
                conn.invalidate()
            raise
        except BaseException:
            # A call interrupted mid-statement (gevent's deadline) leaves the connection
            # in an unknown state: it is closed, never returned to the pool.
            conn.invalidate()
            raise
        finally:
            if read_only and conn.dialect.name == "sqlite" and not conn.invalidated:
                with contextlib.suppress(DBAPIError):
                    conn.rollback()
                    conn.exec_driver_sql("PRAGMA query_only = OFF")
                    conn.commit()
    except DBAPIError as exc:
        if watch is not None and watch.fired:
            raise _stopped(engine) from None
        raise (fatal(exc) or exc) from None
    finally:
        if watch is not None:
            watch.cancel()
        if conn is not None:
            conn.close()
