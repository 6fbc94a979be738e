"""Slots counted on one host: in this process, or across workers through the arbiter."""

from __future__ import annotations

import collections
import socket
import threading
import time

from .backend import MAX_LINE, BackendDown

# One request line: "ACQ <level> <key>\n"; the arbiter answers "OK\n" when the
# slot is granted. Holding the socket open holds the slot; closing it, or the
# process dying, frees it.

# How long a worker tries to reach an arbiter that is not there (being restarted).
RECONNECT_SECONDS = 2.0


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

    def acquire(self, key: str, level: int, wait: float) -> _InProcessLease | None:
        with self._lock:
            slots = self._keys.setdefault(key, _Slots())
            if not slots.queue and slots.in_use < level:
                slots.in_use += 1
                return _InProcessLease(self, key)
            waiter = _Waiter(level)
            slots.queue.append(waiter)
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


class ArbiterBackend:
    """Slots of every worker of a host, granted by the arbiter process."""

    name = "arbiter"

    def __init__(self, path: str):
        self.path = path

    def acquire(self, key: str, level: int, wait: float) -> _ArbiterLease | None:
        line = f"ACQ {level} {key}\n".encode()
        if len(line) > MAX_LINE or "\n" in key:
            raise ValueError("connection id too long for the limiter")
        sock = self._connect()
        try:
            sock.sendall(line)
        except OSError as exc:
            sock.close()
            raise BackendDown(f"arbiter at {self.path}: {exc}") from None
        # The wait is a blocking read: no polling, and the arbiter queues us in order.
        sock.settimeout(max(wait, 0.05))
        try:
            answer = sock.recv(16)
        except TimeoutError:
            sock.close()  # leaves the queue; a grant racing this close is freed on EOF
            return None
        except OSError as exc:
            sock.close()
            raise BackendDown(f"arbiter at {self.path}: {exc}") from None
        if answer != b"OK\n":
            sock.close()
            raise BackendDown(f"arbiter at {self.path} answered {answer!r}")
        return _ArbiterLease(sock)

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


class _ArbiterLease:
    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
