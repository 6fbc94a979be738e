"""New connections spread over the workers (gateway.balance): the shared table across
real forks, and a real gunicorn whose workers share bursts of connections evenly even
when the machine's cores are busy (where the worker already running used to take them all)."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway import balance
from gateway.testing import TOKEN, wait_until
from tests.support import Gunicorn, write_testkit_site


def _in_child(action) -> int:
    """Run ``action`` in a forked child; its exit status (0: it returned)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            action()
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def test_a_worker_leaves_connections_to_an_emptier_live_sibling_seen_across_a_fork():
    class Worker:  # a master's worker object: its slot is freed when the master drops it
        pass

    table = balance.Table(slots=4)
    mine_holder, sibling_holder = Worker(), Worker()
    mine = balance.Balancer(table, table.claim(mine_holder))
    sibling = balance.Balancer(table, table.claim(sibling_holder))
    assert (mine.index, sibling.index) == (0, 1)
    mine.start()
    mine.opened()
    assert not mine.should_leave()  # no live sibling yet: accept

    def sibling_holds_one() -> None:  # the sibling worker, in its own process
        sibling.start()
        sibling.opened()

    assert _in_child(sibling_holds_one) == 0
    assert table.read(1)[1:2] == (1,)  # what the child published, seen here
    assert not mine.should_leave()  # 1 against 1
    mine.opened()
    assert mine.should_leave()  # 2 against 1: the sibling takes the next one
    mine.closed()
    assert not mine.should_leave()

    # A sibling that stopped accepting, or whose heartbeat is old, is not waited for.
    mine.opened()
    pid, held, beat = table.read(1)
    table.write(1, pid, held, beat - balance.STALE - 1)
    assert not mine.should_leave()
    table.write(1, pid, held, time.monotonic())
    assert mine.should_leave()
    assert _in_child(sibling.withdraw) == 0
    assert not mine.should_leave()

    # A forked worker inherits the master's finalizers: dropping its copy frees nothing.
    def drop_the_copy() -> None:
        nonlocal mine_holder
        del mine_holder
        gc.collect()

    table.write(0, 123, 0, time.monotonic())
    assert _in_child(drop_the_copy) == 0
    assert table.read(0)[0] == 123
    # The master dropping a reaped worker's object frees its slot for the next worker.
    del sibling_holder
    gc.collect()
    assert table.read(1) == (0, 0, 0.0)
    assert table.claim(Worker()) == 1


def _established(port: int) -> dict[int, int]:
    """inode -> 1 for each established TCP connection to ``port`` (/proc/net/tcp)."""
    inodes = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(name) as table:
            next(table)
            for line in table:
                fields = line.split()
                local, state, inode = fields[1], fields[3], int(fields[9])
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes[inode] = 1
    return inodes


def _held_by(pids: list[int], port: int) -> list[int]:
    """How many client connections each process of ``pids`` holds, largest first."""
    inodes = _established(port)
    counts = []
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    held += 1
        counts.append(held)
    return sorted(counts, reverse=True)


@pytest.fixture
def clients():
    """Client sockets a test opens; all closed at its end, passed or failed."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _burst(clients: list[socket.socket], port: int, count: int) -> list[socket.socket]:
    """``count`` connections opened at once, as a client opens its pool; one ping on each."""
    body = json.dumps({"diy": True, "type": "wrapper", "function": "kit.ping", "options": {}}).encode()
    request = (
        b"POST /function HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    ) % (TOKEN.encode(), len(body), body)
    socks = []
    for _ in range(count):
        sock = socket.socket()
        clients.append(sock)
        socks.append(sock)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
    for sock in socks:
        sock.setblocking(True)
        sock.settimeout(30)
        sock.sendall(request)
    for sock in socks:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200"), "every call of the burst is answered"
    return socks


def _started(server: Gunicorn) -> Gunicorn:
    """``server`` once both its workers have loaded the app (``/livez`` answered by one
    says nothing of the other, which may still be importing and accepts nothing yet)."""
    wait_until(lambda: server.log().count("connector kit loaded") >= 2, 30, what="both workers loaded")
    time.sleep(0.2)  # from loading the app to accepting
    return server


@pytest.fixture
def busy_cores():
    """Every core busy with a spinning process, as on a loaded host: a woken worker then
    waits for a core while the one already running accepts."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
    ]
    yield
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


def test_bursts_of_connections_are_shared_evenly_by_two_workers_on_busy_cores(tmp_path, busy_cores, clients):
    # Before gateway.balance, 8 connections opened at once went all to one worker in
    # about half the bursts on this 2-core machine under load (9 of 20).
    site = write_testkit_site(tmp_path / "site")
    with Gunicorn(site, tmp_path, env={"WRAPGATE_PLUGINS": "kit"}) as server:
        workers = _started(server).workers()
        assert len(workers) == 2
        splits = []
        for _ in range(10):
            socks = _burst(clients, server.port, 8)
            splits.append(_held_by(workers, server.port))
            for sock in socks:
                sock.close()
            time.sleep(0.2)  # the workers see the closes
    print("splits of 10 bursts of 8 connections:", splits)
    uneven = [split for split in splits if split[0] > 6]
    assert len(uneven) <= 1, splits
    assert all(sum(split) == 8 for split in splits), splits


def test_a_stopped_worker_holds_no_new_connection_up(tmp_path, clients):
    # A sibling that stops running (SIGSTOP here; a hung loop alike) keeps a fresh
    # heartbeat for up to STALE seconds: its fuller sibling still accepts every new
    # connection (each after at most DEFER), and every call is answered.
    site = write_testkit_site(tmp_path / "site")
    with Gunicorn(site, tmp_path, env={"WRAPGATE_PLUGINS": "kit"}) as server:
        first, second = _started(server).workers()
        _burst(clients, server.port, 8)
        (before,) = _held_by([first], server.port)
        os.kill(second, signal.SIGSTOP)
        try:
            _burst(clients, server.port, 6)  # all to `first`: `second` runs no more
            assert _held_by([first], server.port) == [before + 6]
        finally:
            os.kill(second, signal.SIGCONT)


def test_a_worker_that_stops_accepting_withdraws_however_gunicorn_stops_it():
    # gunicorn ends a worker by setting `alive` false (max_requests after a call, a
    # changed parent...), not only through the paths the worker class overrides.
    from gateway.worker import WrapgateWorker

    table = balance.Table(slots=2)
    worker = WrapgateWorker.__new__(WrapgateWorker)  # no gunicorn around it: the attribute alone
    worker.idle = {}
    worker.balancer = balance.Balancer(table, 0)
    worker.alive = True
    worker.balancer.start()
    assert table.read(0)[0] == os.getpid()
    worker.alive = False
    assert table.read(0) == (0, 0, 0.0)
    worker.balancer.heartbeat()  # gunicorn's graceful loop still calls notify()
    assert table.read(0)[0] == 0


def test_a_worker_at_max_requests_closes_its_idle_connections_and_is_replaced(tmp_path, clients):
    # Before, a worker that reached max_requests kept its idle keep-alive connections
    # until graceful_timeout (minutes), still heartbeating: its sibling kept leaving new
    # connections to a worker that no longer accepted, 50 ms each.
    site = write_testkit_site(tmp_path / "site")
    args = ("--max-requests", "40", "--max-requests-jitter", "0")
    with Gunicorn(site, tmp_path, env={"WRAPGATE_PLUGINS": "kit"}, args=args) as server:
        first = set(_started(server).workers())
        idle = _burst(clients, server.port, 6)  # one call each, then idle keep-alive connections
        # 100 calls take both workers past 40; a worker at max_requests ends within a
        # second or two (gunicorn looks at `alive` once a second).
        for _ in range(100):
            assert server.call("kit.ping", {}, timeout=10).status_code == 200
        wait_until(lambda: set(server.workers()) != first, 20, what="a worker replaced")
        # The replaced worker's idle connections were closed (EOF), not held; the other
        # worker's stay open.
        readable, _, _ = select.select(idle, [], [], 10)
        assert readable and all(sock.recv(1) == b"" for sock in readable)
        for _ in range(20):
            assert server.call("kit.ping", {}, timeout=10).status_code == 200
