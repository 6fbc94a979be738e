"""The limiter under faults: its arbiter killed or hung, Redis restarted empty,
connection ids no line protocol expects. Real gunicorn, arbiter and Redis.

The ``probe`` connector counts each connection's calls inside the plugin at
once across every worker (see tests/test_limits.py); these tests read its maximum.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from support import RedisServer, wait_until
from test_limits import burst, export_call, limited_env, probe

pytestmark = pytest.mark.slow


@pytest.fixture
def probe_dir(tmp_path):
    folder = tmp_path / "probe"
    folder.mkdir()
    return folder


def arbiter_pid(server) -> int:
    return int(
        re.findall(r"(?:local limiter arbiter pid|limiter arbiter restarted: pid) (\d+)", server.log())[-1]
    )


def test_killing_the_arbiter_loses_no_call_and_no_level(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=30), workers=2)
    calls = [lambda: export_call(server.url, "conn-kill", 2.0, level=2)] * 6
    with_kill = [*calls[:3], lambda: _kill_arbiter(server), *calls[3:]]
    results = burst(with_kill, threads=len(with_kill))
    answers = [r for r in results if r is not None]
    # Running calls keep their slots, waiting ones ask the new arbiter: all answered 200.
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    assert probe(probe_dir, "conn-kill")["max"] == 2
    assert "restarting it" in server.log()
    # Calls made after the restart are limited as before.
    results = burst([lambda: export_call(server.url, "conn-kill", 0.3, level=2)] * 8, threads=8)
    assert [r.status_code for r in results] == [200] * 8
    assert probe(probe_dir, "conn-kill")["max"] == 2


def _kill_arbiter(server):
    time.sleep(0.7)  # two calls run, the rest wait
    os.kill(arbiter_pid(server), signal.SIGKILL)


def test_a_hung_arbiter_answers_limiter_unavailable_and_is_replaced(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=20), workers=1)
    assert export_call(server.url, "conn-hung", 0, level=1).status_code == 200
    hung = arbiter_pid(server)
    os.kill(hung, signal.SIGSTOP)
    try:
        began = time.monotonic()
        # Another connection: conn-hung's worker may still keep the slot of its call
        # (counted by the arbiter), and a call taking it asks nothing.
        answer = export_call(server.url, "conn-hung-2", 0, level=1)
        assert answer.status_code == 503, answer.text  # not a 429 blamed on the connection
        assert answer.json()["errors"][0]["code"] == "limiter_unavailable"
        assert time.monotonic() - began < 10  # well before the 20 s wait bound
        # The master notices and replaces it; limited calls are served again.
        wait_until(lambda: "answered no health check" in server.log(), 30, 0.2, "the master noticing")
        wait_until(lambda: arbiter_pid(server) != hung, 15, 0.2, "a new arbiter")
        wait_until(
            lambda: export_call(server.url, "conn-hung", 0, level=1).status_code == 200,
            15,
            0.5,
            "a served call",
        )
    finally:
        try:
            os.kill(hung, signal.SIGCONT)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("connection_id", ["line\nbreak", "tab\there ünïcode", "y" * 240])
def test_any_json_string_is_a_connection_id_and_is_limited(start_gateway, probe_dir, connection_id):
    server = start_gateway(limited_env(probe_dir), workers=2)
    results = burst([lambda: export_call(server.url, connection_id, 0.3, level=1)] * 4, threads=4)
    assert [r.status_code for r in results] == [200] * 4, [r.text for r in results]
    assert probe(probe_dir, connection_id)["max"] == 1


def test_a_connection_id_longer_than_a_line_is_served(start_gateway):
    # The probe connector names files after the id, so this one calls kit: ids of
    # over 1 KB used to answer 422 ValueError with the local limiter.
    server = start_gateway({"WRAPGATE_PLUGINS": "kit"}, workers=1)
    options = {"connection": {"_id": "z" * 5000, "concurrencyLevel": 1}}
    answers = burst([lambda: server.call("kit.ping", options)] * 3, threads=3)
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]


def test_redis_restarted_empty_gets_running_leases_back_within_a_third_of_a_lease(
    start_gateway, probe_dir, tmp_path
):
    redis = RedisServer(tmp_path).start()
    try:
        env = limited_env(
            probe_dir,
            WRAPGATE_LIMITER="redis",
            WRAPGATE_REDIS_URL=redis.url,
            WRAPGATE_LEASE_SECONDS=3,
            WRAPGATE_LIMIT_WAIT=0.5,
        )
        server = start_gateway(env, workers=1)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            holder = pool.submit(export_call, server.url, "conn-redis", 6, 1)
            wait_until(lambda: probe(probe_dir, "conn-redis")["now"] == 1, 10, 0.05, "the first call running")
            redis.stop()
            redis.start()  # same port, empty
            time.sleep(1 + 0.5)  # the documented bound: a third of the lease, and a margin
            second = export_call(server.url, "conn-redis", 0, level=1)
            assert second.status_code == 429, second.text  # the running call's slot counts again
            assert holder.result().status_code == 200
        assert probe(probe_dir, "conn-redis")["max"] == 1
        assert "asserted again" in server.log()
    finally:
        redis.stop()


def test_a_call_answered_504_keeps_its_slot_until_the_plugin_really_ends(start_gateway, probe_dir):
    # The caller gets its 504 at the deadline, but the plugin's call still runs on its
    # thread: the external system would see two calls of a level-1 connection at once.
    env = limited_env(probe_dir, WRAPGATE_CALL_TIMEOUT=1, WRAPGATE_LIMIT_WAIT=10)
    server = start_gateway(env, workers=1)
    began = time.monotonic()
    first = export_call(server.url, "conn-late", 3, level=1)
    assert first.status_code == 504 and time.monotonic() - began < 1 + 4
    second = export_call(server.url, "conn-late", 0, level=1)
    assert second.status_code == 200, second.text
    assert time.monotonic() - began > 2.5  # it waited for the abandoned call's end
    assert probe(probe_dir, "conn-late")["max"] == 1
