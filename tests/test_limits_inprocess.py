"""The in-process backend (wrapgate call, embedded apps, the fallback) with real threads."""

import threading
import time

import pytest

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


def _permit_plugin(seen):
    """A connector whose ping sends 8 'requests' from 8 threads, each under a permit."""
    import types

    from gateway import hookimpl

    def wrapgate_ping(context):
        lock, state = threading.Lock(), {"now": 0}
        seen["level"] = context.level
        barrier = threading.Barrier(8, timeout=10)

        def request():
            barrier.wait()
            with context.permit():
                with lock:
                    state["now"] += 1
                    seen["max"] = max(seen.get("max", 0), state["now"])
                time.sleep(0.02)
                with lock:
                    state["now"] -= 1

        threads = [threading.Thread(target=request) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)

    plugin = types.ModuleType("fanout")
    plugin.wrapgate_ping = hookimpl(wrapgate_ping)
    return plugin


def test_request_permits_hold_a_calls_requests_to_the_level_and_free_them():
    from gateway.testing import InProcessGateway

    seen = {}
    gateway = InProcessGateway({"fanout": _permit_plugin(seen)}, limiter="local")
    connection = {"_id": "conn-p", "concurrencyLevel": 2}
    assert gateway.call("fanout.ping", {"connection": connection})[0] == 200
    assert seen == {"level": 2, "max": 2}
    backend = gateway.gateway.limiter.backend
    assert backend.counts("conn-p:requests") == (0, 0) and backend.counts("conn-p") == (0, 0)


def test_without_a_limiter_the_context_has_no_level_and_permits_count_nothing():
    from gateway.testing import InProcessGateway

    seen = {}
    gateway = InProcessGateway({"fanout": _permit_plugin(seen)}, limiter="none")
    assert gateway.call("fanout.ping", {"connection": {"_id": "c", "concurrencyLevel": 2}})[0] == 200
    assert seen["level"] is None and seen["max"] == 8


def test_a_permit_not_freed_before_the_deadline_is_a_429():
    from gateway.errors import ConcurrencyLimitExceeded
    from gateway.testing import InProcessGateway

    limiter = InProcessGateway({}, limiter="local").gateway.limiter
    with limiter.permit("c", 1, time.monotonic() + 5):
        try:
            with limiter.permit("c", 1, time.monotonic() + 0.05):
                raise AssertionError("a second permit at level 1")
        except ConcurrencyLimitExceeded as exc:
            assert exc.status == 429 and "1 requests in flight" in exc.message


def test_only_a_request_that_waits_is_reported_as_waiting():
    backend, waits = InProcessBackend(), []
    held = backend.acquire("c", 1, 0, on_wait=lambda: waits.append("c"))
    assert held is not None and waits == []  # granted at once: never waited
    assert backend.acquire("c", 1, 0.05, on_wait=lambda: waits.append("c")) is None
    assert waits == ["c"]  # queued, reported once, then gave up


def test_redis_reports_a_wait_only_when_the_slot_is_not_free(redis_server):
    # A real redis-server on loopback (tests/conftest.py).
    from gateway.limits.redis_backend import RedisBackend

    backend, waits = RedisBackend(redis_server.url, 30), []
    held = backend.acquire("conn-wait", 1, 1, on_wait=lambda: waits.append(1))
    assert held is not None and waits == []
    assert backend.acquire("conn-wait", 1, 0.2, on_wait=lambda: waits.append(1)) is None
    assert waits == [1]
    held.release()


def test_a_wait_reported_by_a_backend_that_then_fails_is_reported_once(tmp_path):
    # The arbiter's client reports its wait as it asks, then finds no arbiter (a socket
    # path nobody listens on: it retries for RECONNECT_SECONDS) and the in-process
    # fallback queues the call again: one wait, not two, or the gauge never returns to 0.
    from gateway import config
    from gateway.errors import ConcurrencyLimitExceeded
    from gateway.limits import Limiter
    from gateway.limits.local import ArbiterBackend
    from gateway.parsed import Connection

    events = []
    fallback = InProcessBackend()
    settings = config.load({}, require_token=False, limit_wait=0.2, limiter_failure="local")
    limiter = Limiter(
        settings,
        ArbiterBackend(str(tmp_path / "nobody.sock")),
        fallback,
        notify=lambda hook, **kw: events.append((hook, kw.get("delta"))),
    )
    held = fallback.acquire("conn-f", 1, 0)
    try:
        with pytest.raises(ConcurrencyLimitExceeded):
            with limiter(Connection.parse({"_id": "conn-f", "concurrencyLevel": 1})):
                pass
    finally:
        held.release()
    waits = [delta for hook, delta in events if hook == "wrapgate_slot_waiting"]
    assert waits == [1, -1], events
