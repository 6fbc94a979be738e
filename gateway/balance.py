"""New client connections spread over a server's workers, not piled on one.

Every worker accepts from the one listening socket gunicorn opened. When several
connections arrive together (a client opening its pool of keep-alive
connections, as integrator.io and load balancers do), the kernel wakes every
worker, and the one already running wins the race to accept each of them while
its siblings are still being scheduled. On this project's 2-core machine under
load, 8 connections opened at once all went to one worker in 9 bursts of 20.
Keep-alive connections stay where they were accepted, so one core then serves
every call of that client while the other idles: in one
bench run export-1mb went at 67 req/s (8 connections on one worker) against
149 req/s in the next server's run (4 and 4), and export-5mb 11 against 27.

So the workers keep score. Each one publishes, in a table the master shares with
all of them (an anonymous shared mapping made before it forks; a slot per
worker), how many client connections it holds and a heartbeat. A worker about
to accept a connection while it holds more than a live sibling leaves it to
that sibling: it stops accepting and looks at the counts again every
:data:`POLL` seconds, accepting again as soon as it is no longer the fuller one,
and after :data:`DEFER` seconds accepts the next connection whatever the counts
say. So a connection waits only when the workers are uneven and the emptier one
does not take it at once, and then ``DEFER`` per connection queued before it
(the k-th of a burst up to k times ``DEFER``, while a live sibling takes none).
A sibling that stops accepting withdraws at once, whatever stops it (drain,
recycle, ``max_requests``, shutdown: gunicorn's ``alive`` going false, see
:class:`gateway.worker.WrapgateWorker`); one that hangs counts for nothing once
its heartbeat is :data:`STALE` seconds old.

Measured (``tests/test_balance.py`` does it with every core busy): bursts of 8
connections split 4/4 in 10 of 10 (before: 8/0 in 9 of 20); 200 at once 100/100.
A client that opens a connection per call (``Connection: close``, 32 at a time)
is served as fast as before (1516-1620 -> 1584-1668 req/s), its p99 27-29 ->
33-36 ms: the calls that waited for the emptier worker. ``DEFER`` is 50 ms, not
less, because a sibling busy serialising a large page may not reach its accept
sooner: at 20 ms, export-5mb's 4 connections still split 3/1 in one run of three.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
import weakref
from typing import Any

from gevent.server import StreamServer

#: Seconds a worker leaves a new connection to an emptier sibling before taking it.
DEFER = 0.05
#: How often (seconds) a worker that left connections to a sibling looks at the counts again.
POLL = 0.001
#: A sibling whose last heartbeat is older than this (seconds) is not counted.
STALE = 3.0
#: Workers a table has room for (gunicorn runs a few per core); one beyond them
#: accepts as gevent does, unbalanced. A reload (SIGHUP) runs the old and the new
#: workers side by side for a moment: past 32 workers, some new ones go unbalanced.
SLOTS = 64

_SLOT = struct.Struct("=qqd")  # pid, connections held, heartbeat (time.monotonic, system-wide)


class Table:
    """The shared table of one server's workers. Made in the master; the slots are
    handed out there too (:meth:`claim`), so two workers never share one."""

    def __init__(self, slots: int = SLOTS):
        self.slots = slots
        self.memory = mmap.mmap(-1, slots * _SLOT.size)  # anonymous, MAP_SHARED: forks see one table
        self.owner = os.getpid()
        self._taken: set[int] = set()

    def claim(self, holder: Any) -> int | None:
        """A free slot for ``holder`` (a worker object of the master), freed when the
        master drops it (after reaping the worker); None when every slot is taken."""
        for index in range(self.slots):
            if index not in self._taken:
                self._taken.add(index)
                self.write(index, 0, 0, 0.0)
                weakref.finalize(holder, self._release, index, os.getpid())
                return index
        return None

    def _release(self, index: int, owner: int) -> None:
        # A forked worker inherits these finalizers: only the process that claimed acts.
        if os.getpid() == owner:
            self._taken.discard(index)
            self.write(index, 0, 0, 0.0)

    def write(self, index: int, pid: int, connections: int, beat: float) -> None:
        _SLOT.pack_into(self.memory, index * _SLOT.size, pid, connections, beat)

    def read(self, index: int) -> tuple[int, int, float]:
        pid, held, beat = _SLOT.unpack_from(self.memory, index * _SLOT.size)
        return pid, held, beat

    def least_of_others(self, index: int, now: float) -> int | None:
        """The fewest connections a live sibling of slot ``index`` holds (None: no live sibling)."""
        least = None
        for other, (pid, held, beat) in enumerate(_SLOT.iter_unpack(self.memory)):
            if pid and other != index and now - beat < STALE and (least is None or held < least):
                least = held
        return least


class Balancer:
    """One worker's slot: what it publishes and whether it should accept now."""

    def __init__(self, table: Table, index: int):
        self.table = table
        self.index = index
        self.pid = 0
        self.held = 0
        self.beat = 0.0

    def start(self) -> None:
        """In the worker, once forked: the slot is this process's, live from now."""
        self.pid = os.getpid()
        self.heartbeat()

    def heartbeat(self) -> None:
        if self.pid:
            self.beat = time.monotonic()
            self._publish()

    def withdraw(self) -> None:
        """This worker accepts no more: its siblings stop leaving connections to it."""
        self.pid = 0  # and no heartbeat brings it back
        self.beat = 0.0
        self._publish()

    def opened(self) -> None:
        self.held += 1
        self._publish()

    def closed(self) -> None:
        self.held -= 1
        self._publish()

    def should_leave(self) -> bool:
        """True when a live sibling holds fewer connections than this worker."""
        if not self.beat:
            return False
        least = self.table.least_of_others(self.index, time.monotonic())
        return least is not None and self.held > least

    def _publish(self) -> None:
        self.table.write(self.index, self.pid, self.held, self.beat)


class BalancedServer(StreamServer):
    """gevent's stream server, accepting through a :class:`Balancer` (class attribute
    ``balancer``, set on a subclass made per worker by :func:`server_class`)."""

    balancer: Balancer
    _forced = False
    _until = 0.0

    def do_read(self) -> Any:
        # A forced accept is for the connection that waited; one arriving much later
        # (the sibling took that one) is balanced again.
        forced = self._forced and self.loop.now() < self._until + DEFER
        if not forced and self.balancer.should_leave():
            # Leave it to the emptier sibling: stop accepting, and look again every
            # POLL seconds (accept again as soon as this worker is no longer the fuller
            # one); after DEFER, accept the next connection whatever the counts say, so
            # that none waits on a sibling that does not come. gevent's own back-off
            # after an accept error stops and restarts accepting so.
            self.stop_accepting()
            self._until = self.loop.now() + DEFER
            self._timer = self.loop.timer(POLL, POLL)
            self._timer.start(self._look_again)
            return None
        self._forced = False
        accepted = super().do_read()
        if accepted:
            self.balancer.opened()
        return accepted

    def _look_again(self) -> None:
        if self.loop.now() >= self._until:
            self._forced = True
        elif self.balancer.should_leave():
            return
        self.stop_accepting()  # the timer
        self._start_accepting_if_started()

    def do_close(self, sock: Any, *args: Any) -> None:
        self.balancer.closed()
        super().do_close(sock, *args)


def server_class(balancer: Balancer) -> type[BalancedServer]:
    return type("BalancedServer", (BalancedServer,), {"balancer": balancer})
