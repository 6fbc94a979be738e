"""The arbiter's protocol on a worker's shared connection (MUX): a real arbiter process,
as the gunicorn master starts it, over its Unix socket."""

import os
import socket
import subprocess
import sys

import pytest
from support import wait_until

OPEN: list[socket.socket] = []


@pytest.fixture
def arbiter_path(tmp_path):
    path = str(tmp_path / "arbiter.sock")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.limits.arbiter", "--socket", path])
    try:
        wait_until(lambda: os.path.exists(path), 10, what="the arbiter's socket")
        yield path
    finally:
        while OPEN:
            OPEN.pop().close()
        proc.terminate()
        proc.wait(10)


def shared(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    OPEN.append(sock)
    sock.settimeout(5)
    sock.connect(path)
    sock.sendall(b"MUX\n")
    return sock


def lines(sock, count):
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data.decode().splitlines()


def nothing_more(sock, seconds=0.3):
    sock.settimeout(seconds)
    try:
        return sock.recv(4096) == b""  # closed, with nothing sent
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5)


def test_a_shared_connection_gets_slots_up_to_the_level_in_order(arbiter_path):
    one, two = shared(arbiter_path), shared(arbiter_path)
    one.sendall(b"A 1 2 conn-a\nA 2 2 conn-a\nA 3 2 conn-a\n")
    assert lines(one, 2) == ["G 1", "G 2"]
    two.sendall(b"A 1 2 conn-a\nA 9 1 conn-b\n")  # ids are per connection; other connections apart
    assert lines(two, 1) == ["G 9"]
    assert nothing_more(one) and nothing_more(two)
    one.sendall(b"R 1\n")  # the first in line (one's 3) gets the slot, then two's 1
    assert lines(one, 1) == ["G 3"]
    one.sendall(b"R 2\n")
    assert lines(two, 1) == ["G 1"]


def test_giving_up_a_wait_leaves_the_queue_and_a_re_registration_counts_at_once(arbiter_path):
    one, two = shared(arbiter_path), shared(arbiter_path)
    one.sendall(b"H 1 1 conn-a\n")  # held under a previous arbiter: granted, and counted
    assert lines(one, 1) == ["G 1"]
    two.sendall(b"A 1 1 conn-a\nA 2 1 conn-a\n")
    assert nothing_more(two)
    two.sendall(b"R 1\n")  # gives up waiting: the next in line is next
    one.sendall(b"R 1\n")
    assert lines(two, 1) == ["G 2"]


def test_closing_a_shared_connection_frees_all_its_slots_and_waits(arbiter_path):
    one, two = shared(arbiter_path), shared(arbiter_path)
    one.sendall(b"A 1 2 conn-a\nA 2 2 conn-a\nA 3 2 conn-a\nA 4 1 conn-b\n")
    assert lines(one, 3) == ["G 1", "G 2", "G 4"]
    two.sendall(b"A 1 2 conn-a\nA 2 2 conn-a\nA 3 1 conn-b\n")
    assert nothing_more(two)
    one.close()  # a worker killed: its running calls' slots and its waiting call go
    assert sorted(lines(two, 3)) == ["G 1", "G 2", "G 3"]


def test_a_request_the_protocol_does_not_have_closes_the_connection(arbiter_path):
    for bad in (b"A 1 2 conn-a\nA 1 2 conn-a\n", b"A 1 0 conn-a\n", b"X 1\n", b"A 1 x conn-a\n"):
        sock = shared(arbiter_path)
        sock.sendall(bad)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data in (b"", b"G 1\n")  # a duplicate id is refused after its first grant
    # Slots of a refused connection are free again.
    sock = shared(arbiter_path)
    sock.sendall(b"A 1 1 conn-a\n")
    assert lines(sock, 1) == ["G 1"]


# The worker's side of the shared connection (gateway.limits.local._Shared), under
# gevent as in a gunicorn worker: a subprocess, since gevent patches the interpreter.
WORKER_SIDE = r"""
from gevent import monkey

monkey.patch_all()
import sys, gevent, gevent.socket
from gateway.limits.local import ArbiterBackend

sends = []
original = gevent.socket.socket.sendall


def counted(self, data, *args):
    sends.append(bytes(data))
    return original(self, data, *args)


gevent.socket.socket.sendall = counted
backend = ArbiterBackend(sys.argv[1])
running, most, waits = 0, 0, []
alone = backend.acquire("conn-alone", 1, 10, on_wait=lambda: waits.append("alone"))
alone.release()
assert waits == [], waits  # a free slot is granted within a round trip: no wait reported


def call(n):
    global running, most
    for _ in range(5):
        lease = backend.acquire("conn-x", 3, 10, on_wait=lambda: waits.append(n))
        assert lease is not None
        running += 1
        most = max(most, running)
        gevent.sleep(0.001)
        running -= 1
        lease.release()


gevent.joinall([gevent.spawn(call, n) for n in range(40)], raise_error=True)
lines = [line for data in sends for line in data.split(b"\n") if line[:2] in (b"A ", b"R ")]
assert waits, "40 callers of a connection at level 3: some waited"
print(most, len(lines) - 2, len(sends))
"""


def test_a_worker_sends_its_queued_lines_together_and_keeps_the_level(arbiter_path):
    out = subprocess.run(
        [sys.executable, "-c", WORKER_SIDE, arbiter_path], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    most, lines, sends = map(int, out.stdout.split())
    assert most == 3  # the level held, and reached: 40 callers of one connection
    assert lines == 400  # an A and an R for each of the 200 calls, none lost, none twice
    # Lines queued in the same turn of the loop leave together: a send per line was 400.
    assert sends < lines / 2, (sends, lines)
