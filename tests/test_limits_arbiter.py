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


def grants(sock, count):
    """The next ``count`` grants on ``sock`` (what it is told meanwhile left out)."""
    got = []
    while len(got) < count:
        got += [line for line in lines(sock, 1) if line.startswith("G ")]
    return got


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
    # 3 queues: the holder of conn-a's slots (one itself) is told that a request waits
    assert lines(one, 3) == ["G 1", "G 2", "W conn-a"]
    two.sendall(b"A 1 2 conn-a\nA 9 1 conn-b\n")  # ids are per connection; other connections apart
    assert lines(two, 1) == ["G 9"]
    assert nothing_more(one) and nothing_more(two)
    one.sendall(b"R 1\n")  # the first in line (one's 3) gets the slot, then two's 1
    assert lines(one, 1) == ["G 3"]
    one.sendall(b"R 2\n")
    assert lines(two, 1) == ["G 1"]
    assert lines(one, 1) == ["F conn-a"]  # nobody waits any more


def test_giving_up_a_wait_leaves_the_queue_and_a_re_registration_counts_at_once(arbiter_path):
    one, two = shared(arbiter_path), shared(arbiter_path)
    one.sendall(b"H 1 1 conn-a\n")  # held under a previous arbiter: granted, and counted
    assert lines(one, 1) == ["G 1"]
    two.sendall(b"A 1 1 conn-a\nA 2 1 conn-a\n")
    assert nothing_more(two)
    assert lines(one, 1) == ["W conn-a"]
    two.sendall(b"R 1\n")  # gives up waiting: the next in line is next
    one.sendall(b"R 1\n")
    assert lines(two, 1) == ["G 2"]
    assert lines(one, 1) == ["F conn-a"]


def test_closing_a_shared_connection_frees_all_its_slots_and_waits(arbiter_path):
    one, two = shared(arbiter_path), shared(arbiter_path)
    one.sendall(b"A 1 2 conn-a\nA 2 2 conn-a\nA 3 2 conn-a\nA 4 1 conn-b\n")
    assert lines(one, 4) == ["G 1", "G 2", "W conn-a", "G 4"]
    two.sendall(b"A 1 2 conn-a\nA 2 2 conn-a\nA 3 1 conn-b\n")
    assert nothing_more(two)
    one.close()  # a worker killed: its running calls' slots and its waiting call go
    assert sorted(grants(two, 3)) == ["G 1", "G 2", "G 3"]


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
from gateway.limits import local
from gateway.limits.local import ArbiterBackend

local.KEEP_SECONDS = 0.2
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
assert waits, "40 callers of a connection at level 3: some waited"
gevent.sleep(0.7)  # the slots kept after the last calls go back after KEEP_SECONDS
lines = [line for data in sends for line in data.split(b"\n") if line[:2] in (b"A ", b"R ")]
asked = sum(line.startswith(b"A ") for line in lines)
given = sum(line.startswith(b"R ") for line in lines)
print(most, asked, given, len(sends))
"""


def test_a_worker_sends_its_queued_lines_together_and_keeps_the_level(arbiter_path):
    out = subprocess.run(
        [sys.executable, "-c", WORKER_SIDE, arbiter_path], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    most, asked, given, sends = map(int, out.stdout.split())
    assert most == 3  # the level held, and reached: 40 callers of one connection
    # Callers queue all along (W from the arbiter), so a slot is kept only between
    # the first grants and that W: nearly every call asks and gives back.
    assert 190 <= asked <= 201, asked
    assert given == asked  # every slot given back, none twice
    # Lines queued in the same turn of the loop leave together: a send per line was 400.
    assert sends < (asked + given) / 2, (sends, asked, given)


# Below its level a connection's calls reuse the slots this worker keeps: no line at
# all per call. The slots go back when unused for KEEP_SECONDS, or at once when a call
# of the connection waits elsewhere (the second backend stands for another worker).
KEEPING = r"""
from gevent import monkey

monkey.patch_all()
import sys, gevent, gevent.socket
from gateway.limits import local
from gateway.limits.local import ArbiterBackend

local.KEEP_SECONDS = float(sys.argv[2])
sends = []
original = gevent.socket.socket.sendall


def counted(self, data, *args):
    sends.append(bytes(data))
    return original(self, data, *args)


def asked_and_given():
    lines = [line for data in sends for line in data.split(b"\n")]
    return sum(line.startswith(b"A ") for line in lines), sum(line.startswith(b"R ") for line in lines)


gevent.socket.socket.sendall = counted
worker, other = ArbiterBackend(sys.argv[1]), ArbiterBackend(sys.argv[1])
running, most = {}, {}


def call(n):
    key = f"conn-{n % 8}"
    for _ in range(50):
        lease = worker.acquire(key, 5, 10)
        assert lease is not None
        running[key] = running.get(key, 0) + 1
        most[key] = max(most.get(key, 0), running[key])
        gevent.sleep(0.001)
        running[key] -= 1
        lease.release()


gevent.joinall([gevent.spawn(call, n) for n in range(16)], raise_error=True)
print("calls", *asked_and_given(), max(most.values()))
# Another worker wants conn-0 at level 2: it gets the two slots this worker keeps.
sends.clear()
waits = []
first = other.acquire("conn-0", 2, 5, on_wait=lambda: waits.append(1))
second = other.acquire("conn-0", 2, 5, on_wait=lambda: waits.append(2))
assert first is not None and second is not None
print("recalled", *asked_and_given(), len(waits))
# While the other worker holds both, this worker's call waits, and gets a slot as one ends.
gevent.spawn_later(0.2, first.release)
waited = []
mine = worker.acquire("conn-0", 2, 5, on_wait=lambda: waited.append(1))
assert mine is not None and waited == [1]
second.release()
mine.release()
gevent.sleep(0.1)
sends.clear()
# Nobody waits any more (F): this worker keeps its slot again and reuses it without a line.
for _ in range(20):
    worker.acquire("conn-0", 2, 5).release()
print("again", *asked_and_given())
gevent.sleep(float(sys.argv[3]))
print("swept", *asked_and_given())
"""


def run_keeping(arbiter_path, keep_seconds, then_sleep=1.0):
    out = subprocess.run(
        [sys.executable, "-c", KEEPING, arbiter_path, str(keep_seconds), str(then_sleep)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return {line.split()[0]: list(map(int, line.split()[1:])) for line in out.stdout.splitlines()}


def test_a_worker_keeps_its_slots_between_calls_and_gives_them_to_a_caller_that_waits(arbiter_path):
    seen = run_keeping(arbiter_path, keep_seconds=30)  # no sweep: only the arbiter's W frees them
    asked, given, most = seen["calls"]
    # 800 calls of 8 connections, 2 at a time each: a slot is asked for once and kept.
    assert asked <= 16 and given == 0 and most <= 5, seen
    # The other worker asked twice and got both at once: this worker gave its kept slots back.
    assert seen["recalled"] == [2, 2, 0], seen  # A, R (both kept slots), no wait
    assert seen["again"][0] == 0, seen  # nothing asked: the slot was kept after F
    assert seen["swept"] == seen["again"], seen  # and kept: KEEP_SECONDS is 30 here


def test_a_slot_kept_unused_goes_back_to_the_arbiter(arbiter_path):
    seen = run_keeping(arbiter_path, keep_seconds=0.2)
    asked, given = seen["swept"]
    assert asked == seen["again"][0] and given >= 1, seen  # the kept conn-0 slot went back
    # and the arbiter has it free: a level-1 request of conn-0 is granted at once
    sock = shared(arbiter_path)
    sock.sendall(b"A 1 1 conn-0\n")
    assert lines(sock, 1) == ["G 1"]


def test_a_request_that_queues_is_told_to_the_holders_of_its_connection_until_none_waits(arbiter_path):
    one, two, three = shared(arbiter_path), shared(arbiter_path), shared(arbiter_path)
    one.sendall(b"A 1 1 conn-a\nA 2 1 conn-b\n")
    assert lines(one, 2) == ["G 1", "G 2"]
    two.sendall(b"A 1 1 conn-a\n")  # queues: the holder of conn-a is told, once
    three.sendall(b"A 1 1 conn-a\n")
    assert lines(one, 1) == ["W conn-a"]
    assert nothing_more(one) and nothing_more(two)
    one.sendall(b"R 1\n")  # two gets it, three still waits: two is told too
    assert lines(two, 2) == ["G 1", "W conn-a"]
    two.sendall(b"R 1\n")  # three gets it, nobody waits: everyone told is told so
    assert lines(three, 1) == ["G 1"]
    assert lines(one, 1) == ["F conn-a"]
    assert lines(two, 1) == ["F conn-a"]
    assert nothing_more(three) and nothing_more(one)  # conn-b: nobody waited for it


# A slot kept on a connection to an arbiter that died went with it: the next call asks
# the new arbiter (a kept slot taken then would run uncounted, over the level).
RESTART = r"""
from gevent import monkey

monkey.patch_all()
import os, socket, subprocess, sys, gevent
from gateway.limits.local import ArbiterBackend

path = sys.argv[1]


def arbiter():
    proc = subprocess.Popen([sys.executable, "-m", "gateway.limits.arbiter", "--socket", path])
    for _ in range(200):
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
            return proc
        except OSError:
            gevent.sleep(0.05)
    raise SystemExit("no arbiter")


old = arbiter()
backend = ArbiterBackend(path)
backend.acquire("conn-z", 1, 5).release()  # kept
old.terminate()
old.wait()
new = arbiter()
gevent.sleep(0.3)  # the worker's reader sees the old connection closed
holder = socket.socket(socket.AF_UNIX)
holder.connect(path)
holder.sendall(b"MUX\nA 1 1 conn-z\n")
assert holder.recv(16) == b"G 1\n"
print("granted-over-level" if backend.acquire("conn-z", 1, 0.5) is not None else "refused")
holder.close()
lease = backend.acquire("conn-z", 1, 5)
print("granted" if lease is not None else "refused")
new.terminate()
"""


def test_slots_kept_on_a_lost_arbiter_connection_are_not_reused(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", RESTART, str(tmp_path / "arbiter.sock")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "granted"]


def test_a_holder_whose_level_is_below_the_count_is_told_too(arbiter_path):
    # Levels travel with each request: a connection's call may send a lower one. A worker
    # keeping a level-1 slot while 2 run must not reuse it without asking.
    one, two = shared(arbiter_path), shared(arbiter_path)
    one.sendall(b"A 1 1 conn-m\n")
    assert lines(one, 1) == ["G 1"]
    two.sendall(b"A 1 3 conn-m\n")
    assert lines(two, 2) == ["G 1", "W conn-m"]  # 2 run: one's level 1 is passed
    assert lines(one, 1) == ["W conn-m"]
    one.sendall(b"R 1\n")  # only level-3 slots left: nobody's level is passed any more
    assert lines(one, 1) == ["F conn-m"]
    assert lines(two, 1) == ["F conn-m"]


def test_a_worker_slow_to_read_what_it_is_told_keeps_its_slots(arbiter_path):
    # 400 requests of conn-d queue and leave while a worker holding its slot reads
    # nothing: the W and F lines wait for it (closing its connection would free the
    # slot of its running call, and a third request would run over the level).
    slow, busy = shared(arbiter_path), shared(arbiter_path)
    slow.sendall(b"A 1 1 conn-d\n")
    assert lines(slow, 1) == ["G 1"]
    for n in range(400):
        busy.sendall(f"A {n} 1 conn-d\nR {n}\n".encode())
    third = shared(arbiter_path)
    third.sendall(b"A 1 1 conn-d\n")
    assert nothing_more(third, 1.0)  # slow's slot still counts
    data = b""
    while data.count(b"\n") < 801:
        chunk = slow.recv(65536)
        assert chunk, "slow's connection was closed"
        data += chunk
    # every flip, then the third request's wait
    assert data.decode().splitlines() == ["W conn-d", "F conn-d"] * 400 + ["W conn-d"]
    slow.sendall(b"R 1\n")
    assert grants(third, 1) == ["G 1"]


# A call that asks while another greenlet's new connection is registering (its send
# yields: the arbiter reads slowly, or the registration is long) was taken for one
# that registration carried, and waited without its request ever being sent.
ASKED_WHILE_CONNECTING = r"""
from gevent import monkey

monkey.patch_all()
import sys, time, gevent, gevent.socket
from gateway.limits.local import ArbiterBackend

original = gevent.socket.socket.sendall


def slow_registration(self, data, *args):
    if data.startswith(b"MUX\n"):
        gevent.sleep(0.2)  # the loop runs other greenlets meanwhile
    return original(self, data, *args)


gevent.socket.socket.sendall = slow_registration
backend = ArbiterBackend(sys.argv[1])
took = {}


def call(key):
    started = time.monotonic()
    lease = backend.acquire(key, 5, 3)
    took[key] = None if lease is None else round(time.monotonic() - started, 2)


first = gevent.spawn(call, "conn-first")
gevent.sleep(0.05)  # the first call is registering its connection
second = gevent.spawn(call, "conn-second")
gevent.joinall([first, second])
print(took["conn-first"], took["conn-second"])
"""


def test_a_call_that_asks_while_the_connection_is_made_is_asked_for(arbiter_path):
    out = subprocess.run(
        [sys.executable, "-c", ASKED_WHILE_CONNECTING, arbiter_path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    first, second = (None if value == "None" else float(value) for value in out.stdout.split())
    assert first is not None and first < 1.5, out.stdout
    # Granted once its request is sent: not after the health check (1 s), nor never (3 s).
    assert second is not None and second < 1.0, out.stdout
