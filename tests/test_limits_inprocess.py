"""The in-process backend (wrapgate call, embedded apps, the fallback) with real threads."""

import threading
import time

from gateway.limits.local import InProcessBackend


def test_grants_up_to_the_level_then_times_out():
    backend = InProcessBackend()
    leases = [backend.acquire("c", 2, 0) for _ in range(2)]
    assert all(leases)
    assert backend.acquire("c", 2, 0.05) is None
    leases[0].release()
    assert backend.acquire("c", 2, 0) is not None


def test_release_is_idempotent_and_idle_keys_are_forgotten():
    backend = InProcessBackend()
    lease = backend.acquire("c", 1, 0)
    lease.release()
    lease.release()
    assert backend.counts("c") == (0, 0) and not backend._keys


def test_waiters_get_slots_in_arrival_order():
    backend = InProcessBackend()
    first = backend.acquire("c", 1, 0)
    order = []

    def wait(i):
        lease = backend.acquire("c", 1, 10)
        order.append(i)
        time.sleep(0.01)
        lease.release()

    threads = []
    for i in range(5):
        t = threading.Thread(target=wait, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.02)  # arrival order
    assert backend.counts("c") == (1, 5)
    first.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]


def test_a_waiter_that_gives_up_leaves_the_queue():
    backend = InProcessBackend()
    held = backend.acquire("c", 1, 0)
    assert backend.acquire("c", 1, 0.05) is None
    assert backend.counts("c") == (1, 0)
    held.release()
    assert backend.counts("c") == (0, 0)


def test_connections_do_not_share_slots():
    backend = InProcessBackend()
    assert backend.acquire("a", 1, 0) and backend.acquire("b", 1, 0)
