"""The local limiter's arbiter: one small process per host that grants slots.

The gunicorn master starts it before forking workers (:class:`Supervisor`,
from ``gateway/gunicorn_conf.py``), restarts it should it die, and stops it on exit. A worker asks for a slot by
connecting to its Unix socket and sending ``ACQ <level> <key>``; the arbiter
answers ``OK`` when a slot is free, in the order the requests came. The slot
is held as long as that connection is open: a worker that finishes closes it,
and a worker that dies (SIGKILL, OOM, segfault) has it closed by the kernel,
so no slot ever leaks. A worker's event loop shares one connection between its
calls instead (``MUX``, then ``A``/``H``/``R`` lines: :meth:`Arbiter._read_shared`),
whose close frees every slot on it the same way. A worker may keep a slot its call
gave back for its next call of the same connection (:class:`gateway.limits.local._Shared`);
when a request of that connection has to queue, the arbiter tells every connection
holding its slots (``W <key>``), which then gives back what it keeps and every slot
as its call ends, until the queue is empty (``F <key>``). The arbiter sleeps in
``select`` between events and exits when the process that started it is gone.

Two more requests keep a restart lossless: ``HOLD <level> <key>`` re-registers
a slot a worker already holds (granted at once, it counts as running), and
``PING`` answers ``PONG`` (a health check: a hung arbiter is told from a busy
connection). An arbiter restarted by the master grants no ``ACQ`` for its
first :data:`RECLAIM_SECONDS`, while workers re-register the slots they hold
under the old one, so no connection runs above its level across a restart.
The master also pings its arbiter and restarts one that stopped answering.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from .backend import MAX_LINE

log = logging.getLogger("gateway.limits.arbiter")
#: Seconds a restarted arbiter only takes re-registrations of held slots.
RECLAIM_SECONDS = 1.5
#: The master pings its arbiter this often; this many unanswered pings in a row restart it.
HEALTH_INTERVAL = 2.0
HEALTH_FAILURES = 3
#: Bytes a shared connection may be behind in reading what it is sent before it is closed.
MAX_OUTBOX = 1 << 20


class _Client:
    """A connection; on a one-slot connection also its one request (``ACQ``/``HOLD``)."""

    __slots__ = ("buffer", "granted", "key", "leases", "level", "outbox", "sock")

    grant = b"OK\n"

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.key: str | None = None
        self.level = 0
        self.granted = False
        self.leases: dict[str, _Lease] | None = None  # a worker's shared connection (MUX)
        self.outbox = b""  # lines for a shared connection its socket could not take yet


class _Lease:
    """One request of a shared connection: ``A <id> <level> <key>``, granted with ``G <id>``."""

    __slots__ = ("client", "grant", "granted", "key", "level", "sock")

    def __init__(self, client: _Client, ident: str, level: int, key: str):
        self.client, self.sock = client, client.sock
        self.grant = f"G {ident}\n".encode()
        self.level, self.key = level, key
        self.granted = False


class Arbiter:
    def __init__(self, path: str, parent: int | None = None, reclaim: float = 0.0):
        self.path = path
        self.parent = parent
        # Until then only HOLDs are granted: the slots running under a previous arbiter come back first.
        self.granting_after = time.monotonic() + reclaim
        self.selector = selectors.DefaultSelector()
        self.running: dict[str, set[_Client | _Lease]] = collections.defaultdict(set)
        self.queues: dict[str, collections.deque[_Client | _Lease]] = collections.defaultdict(
            collections.deque
        )
        # Shared connections a grant could not be written to: closed after the event at hand.
        self.doomed: list[_Client] = []
        # key -> the shared connections told that a request of it waits (``W``), to be
        # told when none waits any more (``F``).
        self.told: dict[str, set[_Client]] = {}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)

    def serve(self) -> None:
        reclaiming = self.granting_after > time.monotonic()
        while True:
            # The timeout notices a vanished parent and the end of a reclaim; events wake us at once.
            timeout = max(0.0, min(1.0, self.granting_after - time.monotonic())) if reclaiming else 1.0
            if reclaiming and time.monotonic() >= self.granting_after:
                reclaiming = False
                for name in list(self.queues):
                    self._pump(name)
                while self.doomed:
                    self._drop(self.doomed.pop())
            for key, events in self.selector.select(timeout=timeout):
                if key.fileobj is self.listener:
                    self._accept()
                    continue
                if events & selectors.EVENT_WRITE:
                    self._flush(key.data)
                if events & selectors.EVENT_READ and key.data.sock.fileno() >= 0:
                    self._read(key.data)
                while self.doomed:
                    self._drop(self.doomed.pop())
            if self.parent is not None and os.getppid() != self.parent:
                log.info("parent %s is gone; arbiter exits", self.parent)
                return

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, _Client(sock))

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(MAX_LINE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        if client.leases is not None:
            self._read_shared(client, data)
            return
        if client.key is not None:
            return  # nothing more is expected from a client once it asked
        client.buffer += data
        if b"\n" not in client.buffer:
            if len(client.buffer) > MAX_LINE:
                self._drop(client)
            return
        first, _, rest = client.buffer.partition(b"\n")
        if first == b"MUX":
            client.leases, client.buffer = {}, b""
            if rest:
                self._read_shared(client, rest)
            return
        line = first.decode("utf-8", "replace")
        if line == "PING":
            try:
                client.sock.send(b"PONG\n")
            except OSError:
                pass
            self._drop(client)
            return
        parts = line.split(" ", 2)
        if len(parts) != 3 or parts[0] not in ("ACQ", "HOLD") or not parts[1].isdigit() or int(parts[1]) < 1:
            self._drop(client)
            return
        client.level, client.key = int(parts[1]), parts[2]
        if parts[0] == "HOLD":
            # A slot granted by a previous arbiter, still running: it counts, whatever the level.
            try:
                client.sock.send(b"OK\n")
            except OSError:
                self._drop(client)
                return
            client.granted = True
            self.running[client.key].add(client)
            return
        self.queues[client.key].append(client)
        self._pump(client.key)

    def _read_shared(self, client: _Client, data: bytes) -> None:
        """Requests of a worker's shared connection, one a line: ``A <id> <level> <key>``
        (queued, granted with ``G <id>``), ``H <id> <level> <key>`` (a slot held under a
        previous arbiter: granted at once), ``R <id>`` (a slot given back, or a wait given
        up). Closing the connection gives back every slot and wait of it.

        The arbiter sends besides ``W <key>`` to a connection holding slots of ``key``
        when a request of ``key`` queues, and ``F <key>`` once none is queued any more
        (:meth:`_pump`): slots a worker keeps between its calls go back while anyone waits."""
        leases = client.leases
        assert leases is not None
        client.buffer += data
        *lines, client.buffer = client.buffer.split(b"\n")
        if len(client.buffer) > MAX_LINE:
            self._drop(client)
            return
        for raw in lines:
            parts = raw.decode("utf-8", "replace").split(" ", 3)
            if len(parts) == 2 and parts[0] == "R":
                lease = leases.pop(parts[1], None)
                if lease is not None:
                    self._forget(lease)
                continue
            if (
                len(parts) != 4
                or parts[0] not in ("A", "H")
                or not parts[2].isdigit()
                or int(parts[2]) < 1
                or parts[1] in leases
            ):
                self._drop(client)
                return
            lease = leases[parts[1]] = _Lease(client, parts[1], int(parts[2]), parts[3])
            if parts[0] == "H":
                if not self._send(lease):
                    return
                lease.granted = True
                self.running[lease.key].add(lease)
                self._pump(lease.key)  # requests of its key may wait: it is told so
            else:
                self.queues[lease.key].append(lease)
                self._pump(lease.key)

    def _send(self, lease: _Client | _Lease) -> bool:
        """Write a grant; a shared connection that cannot take it is closed (its worker
        reconnects and re-registers what it holds), a one-slot one is dropped."""
        if isinstance(lease, _Lease):
            return self._tell(lease.client, lease.grant)
        try:
            return lease.sock.send(lease.grant) == len(lease.grant)
        except OSError:
            return False

    def _tell(self, client: _Client, line: bytes) -> bool:
        """Write ``line`` to a shared connection. What its socket cannot take now waits in
        its outbox for the socket to be writable: a worker whose loop is busy for a while
        must not lose its slots (closing the connection would free those of its running
        calls). A connection gone, or :data:`MAX_OUTBOX` behind, is closed after the event
        at hand (its worker reconnects and re-registers what it holds)."""
        if client.outbox:
            if len(client.outbox) > MAX_OUTBOX:
                return self._doom(client)
            client.outbox += line
            return True
        try:
            sent = client.sock.send(line)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return self._doom(client)
        if sent < len(line):
            client.outbox = line[sent:]
            self.selector.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        return True

    def _flush(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._doom(client)
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            self.selector.modify(client.sock, selectors.EVENT_READ, client)

    def _doom(self, client: _Client) -> bool:
        if client not in self.doomed:
            self.doomed.append(client)
        return False

    def _forget(self, lease: _Client | _Lease) -> None:
        """``lease`` no longer runs nor waits: its slot or place goes to the next in line."""
        key = lease.key
        if key is None:
            return
        if lease.granted:
            self.running[key].discard(lease)
        else:
            try:
                self.queues[key].remove(lease)
            except ValueError:
                pass
        self._pump(key)

    def _drop(self, client: _Client) -> None:
        if client.sock.fileno() < 0:
            return  # dropped already
        self.selector.unregister(client.sock)
        client.sock.close()
        if client.leases is not None:
            for told in self.told.values():
                told.discard(client)
            leases, client.leases = client.leases, {}
            for lease in leases.values():
                self._forget(lease)
            return
        self._forget(client)

    def _pump(self, key: str) -> None:
        running, queue = self.running[key], self.queues[key]
        while queue and len(running) < queue[0].level and time.monotonic() >= self.granting_after:
            client = queue.popleft()
            if isinstance(client, _Lease) and client.client.sock.fileno() < 0:
                continue  # its connection is closed
            if not self._send(client):
                if isinstance(client, _Client):
                    # Gone before its grant: drop it without touching the slot count.
                    self.selector.unregister(client.sock)
                    client.sock.close()
                continue
            client.granted = True
            running.add(client)
        told = self.told.get(key)
        # A request waits, or more run than one holder's level (levels travel with each
        # request, and a call may send a lower one): every worker holding a slot of key
        # gives back the slots it keeps between calls, and each one its call ends, until
        # told otherwise; its next call asks, and waits its turn.
        if queue or any(holder.level < len(running) for holder in running):
            told = told if told is not None else self.told.setdefault(key, set())
            line = f"W {key}\n".encode()
            for holder in running:
                if isinstance(holder, _Lease) and holder.client not in told:
                    told.add(holder.client)
                    self._tell(holder.client, line)
        elif told is not None:
            line = f"F {key}\n".encode()
            for client in self.told.pop(key):
                if client.sock.fileno() >= 0 and client not in self.doomed:
                    self._tell(client, line)
        if not running and not queue:
            del self.running[key], self.queues[key]


# -- Started, watched and stopped by the gunicorn master ------------------------------


class Supervisor:
    """The master's handle on its arbiter: starts it, restarts it if it dies or
    stops answering health checks, stops it.

    A restarted arbiter grants no new slot for :data:`RECLAIM_SECONDS`, while
    the workers re-register the slots of their running calls (``HOLD``).
    """

    def __init__(self, log: logging.Logger | None = None):
        self.folder = tempfile.mkdtemp(prefix="wrapgate-limiter-")
        self.path = os.path.join(self.folder, "arbiter.sock")
        self.log = log or logging.getLogger("gateway.limits.arbiter")
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()

    def start(self) -> Supervisor:
        self.proc = self._spawn()
        threading.Thread(target=self._watch, name="wrapgate-arbiter-watch", daemon=True).start()
        threading.Thread(target=self._check_health, name="wrapgate-arbiter-health", daemon=True).start()
        return self

    def _spawn(self, reclaim: float = 0.0) -> subprocess.Popen:
        if os.path.exists(self.path):
            os.unlink(self.path)  # a dead arbiter's socket: wait for the new one's
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.limits.arbiter",
                "--socket",
                self.path,
                "--parent",
                str(os.getpid()),
                "--reclaim",
                str(reclaim),
            ],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(self.path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the limiter arbiter did not start (exit status {proc.poll()})")
            time.sleep(0.02)
        return proc

    def _watch(self) -> None:
        proc = self.proc
        while proc is not None and not self._stopping.is_set():
            code = proc.wait()  # blocks this thread only
            if self._stopping.is_set():
                return
            self.log.error(
                "limiter arbiter pid %s exited (%s); restarting it. Workers re-register the "
                "slots of running calls before it grants new ones",
                proc.pid,
                code,
            )
            try:
                proc = self.proc = self._spawn(reclaim=RECLAIM_SECONDS)
                self.log.error("limiter arbiter restarted: pid %s", proc.pid)
            except RuntimeError as exc:
                self.log.error("%s; trying again in 5 s (calls meanwhile: WRAPGATE_LIMITER_FAILURE)", exc)
                time.sleep(5)

    def _check_health(self) -> None:
        failures = 0
        while not self._stopping.wait(HEALTH_INTERVAL):
            if ping(self.path, timeout=HEALTH_INTERVAL):
                failures = 0
                continue
            failures += 1
            proc = self.proc
            if failures >= HEALTH_FAILURES and proc is not None and proc.poll() is None:
                self.log.error(
                    "limiter arbiter pid %s answered no health check for %.0f s; killing it "
                    "(it is restarted, limited calls answer limiter_unavailable meanwhile)",
                    proc.pid,
                    failures * HEALTH_INTERVAL,
                )
                proc.kill()
                failures = 0

    def stop(self) -> None:
        self._stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def ping(path: str, timeout: float) -> bool:
    """True when the arbiter at ``path`` answers a health check within ``timeout`` seconds."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"PING\n")
            return sock.recv(8) == b"PONG\n"
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="wrapgate's local concurrency arbiter")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--parent", type=int, default=None)
    parser.add_argument("--reclaim", type=float, default=0.0, help="seconds granting only HOLDs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # SIGINT (Ctrl-C on `wrapgate serve`) goes to the whole process group; the
    # master stops us when it is done draining.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Arbiter(args.socket, args.parent, args.reclaim).serve()


if __name__ == "__main__":
    main()
