"""Slots counted on one host: in this process, or across workers through the arbiter."""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from .backend import WAIT_REPORTED_AFTER, BackendDown, OnWait

log = logging.getLogger("gateway.limits")

# One request line: "ACQ <level> <key>\n"; the arbiter answers "OK\n" when the
# slot is granted. Holding the socket open holds the slot; closing it, or the
# process dying, frees it. The calls of a gevent worker's loop share one
# connection instead (_Shared), whose close frees every slot on it.

# How long a worker tries to reach an arbiter that is not there (being restarted).
RECONNECT_SECONDS = 2.0
#: A wait unanswered this long checks that the arbiter answers at all.
HEALTH_AFTER = 1.0
HEALTH_TIMEOUT = 2.0
#: Longest connection id sent as is (longer ones travel as a digest).
MAX_KEY = 256
#: A slot a worker keeps after its call ended, for its next call of the same
#: connection, goes back to the arbiter when unused this long (or at once when
#: the arbiter says that a call of that connection waits).
KEEP_SECONDS = 1.0


class _Waiter:
    __slots__ = ("event", "granted", "level")

    def __init__(self, level: int):
        self.level = level
        self.event = threading.Event()
        self.granted = False


class _Slots:
    __slots__ = ("in_use", "queue")

    def __init__(self) -> None:
        self.in_use = 0
        self.queue: collections.deque[_Waiter] = collections.deque()


class InProcessBackend:
    """First come, first served slots of the threads (or greenlets) of one process."""

    name = "in-process"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, _Slots] = {}

    def acquire(
        self, key: str, level: int, wait: float, brief: bool = False, on_wait: OnWait = None
    ) -> _InProcessLease | None:
        with self._lock:
            slots = self._keys.setdefault(key, _Slots())
            if not slots.queue and slots.in_use < level:
                slots.in_use += 1
                return _InProcessLease(self, key)
            waiter = _Waiter(level)
            slots.queue.append(waiter)
        if on_wait is not None:
            on_wait()
        waiter.event.wait(wait)
        with self._lock:
            if waiter.granted:
                return _InProcessLease(self, key)
            slots.queue.remove(waiter)
            self._pump(key, slots)  # a waiter ahead of others leaving may let them in
            return None

    def _release(self, key: str) -> None:
        with self._lock:
            slots = self._keys[key]
            slots.in_use -= 1
            self._pump(key, slots)

    def _pump(self, key: str, slots: _Slots) -> None:
        while slots.queue and slots.in_use < slots.queue[0].level:
            waiter = slots.queue.popleft()
            waiter.granted = True
            slots.in_use += 1
            waiter.event.set()
        if not slots.in_use and not slots.queue:
            del self._keys[key]  # idle connections cost nothing

    def counts(self, key: str) -> tuple[int, int]:
        """(running, waiting) of ``key``, for tests and metrics."""
        with self._lock:
            slots = self._keys.get(key)
            return (slots.in_use, len(slots.queue)) if slots else (0, 0)


class _InProcessLease:
    __slots__ = ("_backend", "_done", "_key")

    def __init__(self, backend: InProcessBackend, key: str):
        self._backend, self._key, self._done = backend, key, False

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._backend._release(self._key)


def wire_key(key: str) -> str:
    """``key`` as one line of the arbiter's protocol: any JSON string is a connection id,
    so one with a line break or control character, or too long, travels as its digest."""
    if len(key) <= MAX_KEY and key.isprintable():
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ArbiterBackend:
    """Slots of every worker of a host, granted by the arbiter process.

    A lease watches its socket: should the arbiter die, the lease re-registers
    its slot with the restarted one (``HOLD``), which grants nothing new until
    the slots running under the old one are back. A call waiting for a slot
    when the arbiter dies asks the new one. A wait that gets no answer for
    :data:`HEALTH_AFTER` seconds checks that the arbiter answers at all
    (``PING``): a hung arbiter is :class:`BackendDown` (503
    ``limiter_unavailable``), never a connection's 429.
    """

    name = "arbiter"

    def __init__(self, path: str):
        self.path = path
        self._shared: _Shared | None = None

    def acquire(self, key: str, level: int, wait: float, brief: bool = False, on_wait: OnWait = None) -> Any:
        if not brief:
            shared = self._shared_here()
            if shared is not None:
                return shared.acquire(key, level, wait, on_wait)
        wire = wire_key(key)
        deadline = time.monotonic() + wait
        if on_wait is not None:
            on_wait()  # a connection of its own per call, outside gevent: reported as it asks
        while True:
            sock = self._ask(f"ACQ {level} {wire}\n".encode())
            answer = self._answer(sock, deadline)
            if answer is None:
                sock.close()  # leaves the queue; a grant racing this close is freed on EOF
                return None
            if answer == b"OK\n":
                return _ArbiterLease(self, sock, f"HOLD {level} {wire}\n".encode(), key, watch=not brief)
            sock.close()
            if answer:
                raise BackendDown(f"arbiter at {self.path} answered {answer!r}")
            # The arbiter went away while we waited: ask the one the master starts next.

    def _shared_here(self) -> _Shared | None:
        """The connection the calls of this process's event loop share (a gevent worker's
        main thread); None elsewhere (no gevent, another thread, whose hub cannot use it)."""
        gevent = sys.modules.get("gevent")
        if gevent is None or not gevent.monkey.is_module_patched("socket"):
            return None
        shared = self._shared
        if shared is None or shared.pid != os.getpid():
            shared = self._shared = _Shared(self, gevent.get_hub())
            # Started once it is the one: starting a thread lets the loop run other
            # greenlets, whose first calls would each have made a connection of their own.
            shared.start()
        return shared if gevent.get_hub() is shared.hub else None

    def _answer(self, sock: socket.socket, deadline: float) -> bytes | None:
        """The arbiter's answer; None when ``deadline`` passed first."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(min(remaining, HEALTH_AFTER))
            try:
                return sock.recv(16)
            except ConnectionResetError:
                return b""  # the arbiter died: as its end of the stream
            except TimeoutError:
                if deadline - time.monotonic() > 0 and not self._responsive():
                    sock.close()
                    raise BackendDown(f"arbiter at {self.path} does not answer (hung?)") from None
            except OSError as exc:
                sock.close()
                raise BackendDown(f"arbiter at {self.path}: {exc}") from None

    def _responsive(self) -> bool:
        """The arbiter answers a health check (a restarted one is waited for, as any request)."""
        try:
            sock = self._ask(b"PING\n")
        except BackendDown:
            return False
        with sock:
            sock.settimeout(HEALTH_TIMEOUT)
            try:
                return sock.recv(8) == b"PONG\n"
            except OSError:
                return False

    def _ask(self, line: bytes) -> socket.socket:
        sock = self._connect()
        try:
            sock.sendall(line)
        except OSError as exc:
            sock.close()
            raise BackendDown(f"arbiter at {self.path}: {exc}") from None
        return sock

    def _connect(self) -> socket.socket:
        # The master restarts a dead arbiter within a fraction of a second: bridge
        # that gap rather than refuse the calls that fall into it.
        deadline = time.monotonic() + RECONNECT_SECONDS
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            try:
                sock.connect(self.path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise BackendDown(f"arbiter at {self.path}: {exc}") from None
                time.sleep(0.05)
            except OSError as exc:
                sock.close()
                raise BackendDown(f"arbiter at {self.path}: {exc}") from None

    def reclaim(self, hold: bytes) -> socket.socket | None:
        """Re-register a held slot with a restarted arbiter; None when none answers."""
        try:
            sock = self._ask(hold)
        except BackendDown:
            return None
        sock.settimeout(HEALTH_TIMEOUT)
        try:
            if sock.recv(16) == b"OK\n":
                return sock
        except OSError:
            pass
        sock.close()
        return None


class _ArbiterLease:
    __slots__ = ("_backend", "_hold", "_key", "_released", "_sock")

    def __init__(
        self, backend: ArbiterBackend, sock: socket.socket, hold: bytes, key: str, watch: bool = True
    ):
        self._backend, self._hold, self._key = backend, hold, key
        self._sock: socket.socket | None = sock
        self._released = False
        # A brief lease (one request) is not worth a thread: should the arbiter die
        # meanwhile, that one request runs uncounted by the restarted arbiter.
        if watch:
            threading.Thread(target=self._watch, name="wrapgate-lease", daemon=True).start()

    def _watch(self) -> None:
        # The arbiter sends nothing after OK: a read returns only when it is gone.
        while not self._released:
            sock = self._sock
            if sock is None:
                return
            try:
                sock.settimeout(None)
                sock.recv(1)
            except OSError:
                pass
            if self._released:
                return
            replacement = self._backend.reclaim(self._hold)
            if replacement is None:
                log.error(
                    "the limiter arbiter is gone and no new one took back a running call's slot "
                    "(connection %s): that call now runs uncounted",
                    self._key,
                )
                return
            if self._released:
                replacement.close()
                return
            self._sock = replacement

    def release(self) -> None:
        if not self._released:
            self._released = True
            sock, self._sock = self._sock, None
            if sock is not None:
                # shutdown first: it wakes the watcher's read, which a bare close may not.
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


class _Shared:
    """One arbiter connection for every call of a gevent worker's event loop.

    A connection per call cost a socket, a connect, an accept and a close on both
    sides, and a watcher for each running call. Here the worker sends ``MUX`` once,
    then ``A <id> <level> <key>`` per call (granted with ``G <id>``) and ``R <id>``
    when the call ends or gives up waiting. Closing the connection (or the worker
    dying) gives back all of its slots, as before. Should the arbiter die, the
    reader re-registers every running slot with the restarted one (``H``) and
    asks again for every call still waiting, so the level holds across the restart.

    Lines are not sent one by one: each is queued and a writer greenlet sends all
    that the loop's greenlets queued since it last ran in one ``sendall`` (the
    ``R`` of a call that just ended with the ``A`` of the next one, say). A send
    per line was two system calls a call, about 5% of a ping's CPU.

    Most calls need no line at all: a slot whose call ended is *kept* for the next
    call of the same connection in this worker, which takes it without asking.
    A connection's calls mostly run below its level, and a round trip to the
    arbiter per call (a process that has to get a core on a busy host) cost a
    fifth to a third of the calls served. Kept slots count as running for the
    arbiter, so the level holds; they never keep anyone waiting: when a request of
    that connection queues, the arbiter says so (``W <key>``) and this worker
    gives back what it keeps, then every slot as its call ends, until the
    arbiter says the queue is empty (``F <key>``). A slot unused for
    :data:`KEEP_SECONDS` goes back too.
    """

    def __init__(self, backend: ArbiterBackend, hub: Any):
        self.backend, self.hub, self.pid = backend, hub, os.getpid()
        self.sock: socket.socket | None = None
        self._ids = itertools.count()
        self._lock = threading.Lock()  # gevent's: one greenlet connects at a time
        # Waiting calls whose request the latest connection's registration carried.
        self._registered: set[str] = set()
        self._queued: list[bytes] = []  # lines for the writer to send on self.sock
        self._wake = threading.Event()
        # id -> (granted, its request, its re-registration once granted)
        self.waiting: dict[str, tuple[threading.Event, bytes, bytes]] = {}
        # id -> (re-registration, connection id, its wire key, level)
        self.held: dict[str, tuple[bytes, str, str, int]] = {}
        # wire key -> slots of it kept between calls: [(id, its entry in held, kept since)]
        self.kept: dict[str, list[tuple[str, tuple[bytes, str, str, int], float]]] = {}
        self.wanted: set[str] = set()  # wire keys a request waits for at the arbiter (W, until F)
        self._sweeping = False

    def start(self) -> None:
        threading.Thread(target=self._send_queued, name="wrapgate-arbiter-writer", daemon=True).start()

    def acquire(self, key: str, level: int, wait: float, on_wait: OnWait = None) -> _SharedLease | None:
        wire = wire_key(key)
        kept = self.kept.get(wire)
        if kept and self.sock is not None:
            if kept[-1][1][3] == level:
                ident, entry, _ = kept.pop()
                if not kept:
                    del self.kept[wire]
                self.held[ident] = entry
                return _SharedLease(self, ident)
            # The connection's level changed: its kept slots go back, and it asks anew.
            self._give_back(self.kept.pop(wire))
        ident = str(next(self._ids))
        granted = threading.Event()
        request, hold = f"A {ident} {level} {wire}\n".encode(), f"H {ident} {level} {wire}\n".encode()
        self.waiting[ident] = (granted, request, hold)
        deadline = time.monotonic() + wait
        try:
            self._write(request, asking=ident)
            report = on_wait  # once no grant came within WAIT_REPORTED_AFTER
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if granted.wait(min(remaining, HEALTH_AFTER if report is None else WAIT_REPORTED_AFTER)):
                    del self.waiting[ident]
                    self.held[ident] = (hold, key, wire, level)
                    return _SharedLease(self, ident)
                if report is not None:
                    report()
                    report = None
                    continue
                if deadline - time.monotonic() > 0 and not self.backend._responsive():
                    raise BackendDown(f"arbiter at {self.backend.path} does not answer (hung?)")
        except BaseException:
            self._give_up(ident)
            raise
        self._give_up(ident)  # a grant racing this is given back by the arbiter on R
        return None

    def _give_up(self, ident: str) -> None:
        if self.waiting.pop(ident, None) is not None:
            self._write_quietly(f"R {ident}\n".encode())

    def release(self, ident: str) -> None:
        entry = self.held.pop(ident, None)
        if entry is None:
            return
        wire = entry[2]
        if wire in self.wanted or self.sock is None:
            self._write_quietly(f"R {ident}\n".encode())
            return
        self.kept.setdefault(wire, []).append((ident, entry, time.monotonic()))
        if not self._sweeping:
            self._sweeping = True
            threading.Thread(target=self._sweep, name="wrapgate-arbiter-sweep", daemon=True).start()

    def _give_back(self, kept: list[tuple[str, tuple[bytes, str, str, int], float]]) -> None:
        if kept:
            self._write_quietly(b"".join(f"R {ident}\n".encode() for ident, _, _ in kept))

    def _sweep(self) -> None:
        """Give back the slots kept unused for :data:`KEEP_SECONDS`; ends when none is kept."""
        try:
            while self.kept:
                time.sleep(KEEP_SECONDS / 2)
                stale = time.monotonic() - KEEP_SECONDS
                for wire, kept in list(self.kept.items()):
                    # Taken last in, first out: the stale ones are at the front.
                    count = sum(1 for _, _, since in kept if since <= stale)
                    if count:
                        self._give_back(kept[:count])
                        del kept[:count]
                        if not kept:
                            del self.kept[wire]
        finally:
            self._sweeping = False

    def _wanted(self, wire: str) -> None:
        """A request of ``wire`` waits at the arbiter: what is kept of it goes back."""
        self.wanted.add(wire)
        self._give_back(self.kept.pop(wire, []))

    def _write(self, line: bytes, asking: str | None = None) -> None:
        """Queue ``line`` for the writer (``asking``: the id of the waiting call whose
        request it is, which a new connection's registration may carry, :meth:`_connect`)."""
        if self.sock is None:
            with self._lock:  # wait for a connection another greenlet is making
                if self.sock is None:
                    self._connect()
                # Not "a connection was made meanwhile": its registration was put together
                # before its send, which can yield, and a call that asks during that send
                # is in no registration: its request must go now.
                if asking is not None and asking in self._registered:
                    return
        self._queued.append(line)
        self._wake.set()

    def _send_queued(self) -> None:
        """The writer: all lines queued since it last ran, in one send."""
        while True:
            self._wake.wait()
            self._wake.clear()
            sock, lines = self.sock, self._queued
            if not lines:
                continue
            self._queued = []
            if sock is None:
                continue  # the next connection registers what is still held and waited for
            try:
                sock.sendall(b"".join(lines))
            except OSError:
                # The arbiter is gone: the reader reconnects and sends every request again.
                self._lost(sock)

    def _write_quietly(self, line: bytes) -> None:
        """Give something back: with no connection there is nothing to give back to (the
        arbiter freed the closed one's slots; a new connection registers only what is kept)."""
        if self.sock is not None:
            try:
                self._write(line)
            except BackendDown:
                pass

    def _connect(self) -> socket.socket:
        """Connect (under the lock), register what this worker holds and waits for, start the reader."""
        sock = self.backend._connect()
        sock.settimeout(None)
        # What is held and waited for, registered anew: lines queued for an earlier
        # connection (an R of a slot no longer held, an A now in self.waiting) are moot.
        # Kept slots went with the old connection, and what it was told with them.
        self._queued = []
        self.kept.clear()
        self.wanted.clear()
        lines = [b"MUX\n"]
        lines += [line for line, _, _, _ in self.held.values()]
        # A grant the waiting call has not taken yet counts as held.
        lines += [hold if granted.is_set() else request for granted, request, hold in self.waiting.values()]
        self._registered = set(self.waiting)
        try:
            sock.sendall(b"".join(lines))
        except OSError as exc:
            sock.close()
            raise BackendDown(f"arbiter at {self.backend.path}: {exc}") from None
        self.sock = sock
        threading.Thread(target=self._read, args=(sock,), name="wrapgate-arbiter", daemon=True).start()
        return sock

    def _forget_connection(self, sock: socket.socket) -> None:
        """``sock`` is gone, and with it the slots kept on it (the arbiter freed them on its
        close) and what it was told: a call must not take a slot nobody counts."""
        if self.sock is sock:
            self.sock = None
            self.kept.clear()
            self.wanted.clear()

    def _lost(self, sock: socket.socket) -> None:
        self._forget_connection(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the reader, which reconnects
        except OSError:
            pass

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            if self.sock is not sock:
                break  # a new connection took over: what this one still says is moot
            *lines, buffer = (buffer + data).split(b"\n")
            for line in lines:
                kind, rest = line[:2], line[2:].decode("utf-8", "replace")
                if kind == b"G ":
                    entry = self.waiting.get(rest)
                    if entry is not None:
                        entry[0].set()
                elif kind == b"W ":
                    self._wanted(rest)
                elif kind == b"F ":
                    self.wanted.discard(rest)
        sock.close()
        with self._lock:
            self._forget_connection(sock)
            if self.sock is not None or not (self.held or self.waiting):
                return
            try:
                self._connect()
            except BackendDown:
                for _, key, _, _ in self.held.values():
                    log.error(
                        "the limiter arbiter is gone and no new one took back a running call's slot "
                        "(connection %s): that call now runs uncounted",
                        key,
                    )
                self.held.clear()  # waiting calls find the arbiter gone when they check on it


class _SharedLease:
    __slots__ = ("_done", "_ident", "_shared")

    def __init__(self, shared: _Shared, ident: str):
        self._shared, self._ident, self._done = shared, ident, False

    def release(self) -> None:
        # Once: a kept slot's id is handed to the next call, whose slot a second
        # release of this lease would give back.
        if not self._done:
            self._done = True
            self._shared.release(self._ident)
