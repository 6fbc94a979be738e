"""Per-connection concurrency limits, measured in real gunicorn processes.

The `probe` test connector counts, per connection, the calls inside the plugin
at any moment across every worker and host (see its docstring); these tests
read its maximum. Every load here is bounded in calls and time.
"""

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support import post, wait_until


@pytest.fixture
def probe_dir(tmp_path):
    folder = tmp_path / "probe"
    folder.mkdir()
    return folder


def probe(folder, connection_id):
    path = folder / f"{connection_id}.json"
    return json.loads(path.read_text()) if path.exists() else {"now": 0, "max": 0, "calls": 0, "pids": []}


def export_call(url, connection_id, sleep, level=None, timeout=60):
    connection = {"_id": connection_id}
    if level is not None:
        connection["concurrencyLevel"] = level
    return post(
        url,
        {
            "diy": True,
            "function": "probe.export",
            "options": {"connection": connection, "configuration": {"sleep": sleep}},
        },
        timeout=timeout,
    )


def limited_env(probe_dir, **extra):
    env = {"WRAPGATE_TEST_PROBE_DIR": str(probe_dir), "WRAPGATE_PLUGINS": "probe,kit"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def burst(calls, threads):
    with ThreadPoolExecutor(threads) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


# -- local backend: every worker of one host -----------------------------------------


def test_one_connection_never_exceeds_its_level_across_four_workers(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=60), workers=4)
    results = burst([lambda: export_call(server.url, "conn-a", 0.05, level=3)] * 200, threads=60)
    assert [r.status_code for r in results] == [200] * 200
    seen = probe(probe_dir, "conn-a")
    assert seen["max"] == 3 and seen["calls"] == 200 and seen["now"] == 0
    # The calls really were spread over the workers: the limit held across processes.
    assert len({r.json()["data"][0]["pid"] for r in results}) >= 2


def test_two_connections_each_reach_exactly_their_own_level(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=60), workers=4)
    calls = [lambda: export_call(server.url, "conn-3", 0.3, level=3)] * 30 + [
        lambda: export_call(server.url, "conn-25", 0.3, level=25)
    ] * 100
    results = burst(calls, threads=70)
    assert all(r.status_code == 200 for r in results)
    assert probe(probe_dir, "conn-3")["max"] == 3
    assert probe(probe_dir, "conn-25")["max"] == 25


def test_configured_level_and_default_apply_without_a_level_on_the_call(start_gateway, probe_dir, tmp_path):
    conf = tmp_path / "gateway.toml"
    conf.write_text('[levels]\n"conn-cfg" = 2\n')
    server = start_gateway(
        limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=60, WRAPGATE_DEFAULT_LEVEL=4, WRAPGATE_CONFIG=conf),
        workers=2,
    )
    burst(
        [lambda: export_call(server.url, "conn-cfg", 0.1)] * 20
        + [lambda: export_call(server.url, "conn-dflt", 0.1)] * 30,
        threads=40,
    )
    assert probe(probe_dir, "conn-cfg")["max"] == 2
    assert probe(probe_dir, "conn-dflt")["max"] == 4


def test_over_the_limit_past_the_wait_bound_is_a_shaped_429(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=0.3), workers=2)
    results = burst([lambda: export_call(server.url, "conn-busy", 1.5, level=2)] * 8, threads=8)
    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 429]
    assert len(ok) == 2 and len(refused) == 6
    assert refused[0].headers["Retry-After"] == "1"
    (entry,) = refused[0].json()["errors"]
    assert entry["code"] == "concurrency_limit_exceeded" and "conn-busy" in entry["message"]
    assert probe(probe_dir, "conn-busy")["max"] == 2


def test_waiters_are_served_in_arrival_order(start_gateway, probe_dir):
    # Level 1: calls sent 0.2 s apart while the first holds the slot must finish in that order.
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=60), workers=2)
    finished = []

    def send(i):
        r = export_call(server.url, "conn-fifo", 0.4, level=1)
        finished.append((i, time.monotonic(), r.status_code))

    with ThreadPoolExecutor(6) as pool:
        for i in range(6):
            pool.submit(send, i)
            time.sleep(0.2)
    order = [i for i, _, _ in sorted(finished, key=lambda f: f[1])]
    assert order == list(range(6)) and {s for _, _, s in finished} == {200}


@pytest.mark.parametrize("level", [0, -1, "3", 2.5, True])
def test_bad_level_on_the_connection_is_a_422(gateway, level):
    r = post(
        gateway.url,
        {
            "diy": True,
            "function": "kit.ping",
            "options": {"connection": {"_id": "c", "concurrencyLevel": level}},
        },
    )
    assert r.status_code == 422
    (entry,) = r.json()["errors"]
    assert entry["code"] == "invalid_field" and "concurrencyLevel" in entry["message"]


def test_level_above_25_is_capped_and_logged_once(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=60), workers=1)
    burst([lambda: export_call(server.url, "conn-40", 0.3, level=40)] * 60, threads=60)
    assert probe(probe_dir, "conn-40")["max"] == 25
    assert server.log().count("asks for concurrency level 40; capped at 25") == 1


def test_killed_worker_frees_its_slot_at_once(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=30), workers=2)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(lambda: export_call(server.url, "conn-kill", 60, level=1, timeout=90))
        wait_until(lambda: probe(probe_dir, "conn-kill")["now"] == 1, 10, what="slot held")
        (holder_pid,) = probe(probe_dir, "conn-kill")["pids"]
        os.kill(holder_pid, signal.SIGKILL)
        started = time.monotonic()
        # A fresh call of the same connection gets the slot: the dead worker's socket
        # was closed by the kernel, and the arbiter freed the slot.
        r = export_call(server.url, "conn-kill", 0, level=1, timeout=30)
        freed_after = time.monotonic() - started
        assert r.status_code == 200
        assert freed_after < 10  # bound documented in the README: at once, plus the call itself
        with pytest.raises(requests.ConnectionError):
            holder.result()


def test_saturated_connection_does_not_starve_another(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=60), workers=2)
    with ThreadPoolExecutor(40) as pool:
        # A: 25 calls of 3 s hold every slot of its level, 10 more wait behind them.
        busy = [pool.submit(export_call, server.url, "conn-sat", 3, 25) for _ in range(35)]
        wait_until(lambda: probe(probe_dir, "conn-sat")["now"] == 25, 15, what="A saturated")
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            r = post(
                server.url,
                {"diy": True, "function": "probe.ping", "options": {"connection": {"_id": "conn-b"}}},
            )
            latencies.append(time.monotonic() - started)
            assert r.json() == {"statusCode": 200}
        assert all(f.result().status_code == 200 for f in busy)
    # B never waited for A's slots (those take 3 s each); a generous bound for a noisy machine.
    assert max(latencies) < 1.5, latencies


def test_calls_without_a_connection_are_not_limited_per_connection_but_by_the_worker_cap(
    start_gateway, probe_dir
):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_MAX_IN_FLIGHT=2), workers=1)
    body = {
        "diy": True,
        "function": "kit.ping",
        "options": {"connection": {"unencrypted": {"mode": "sleep", "seconds": 1}}},
    }
    results = burst([lambda: post(server.url, body)] * 5, threads=5)
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 503, 503, 503]
    overloaded = next(r for r in results if r.status_code == 503)
    assert overloaded.json()["errors"][0]["code"] == "overloaded" and overloaded.headers["Retry-After"] == "1"


def test_limiter_none_does_not_limit(start_gateway, probe_dir):
    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMITER="none"), workers=1)
    burst([lambda: export_call(server.url, "conn-free", 0.3, level=1)] * 6, threads=6)
    assert probe(probe_dir, "conn-free")["max"] == 6


# -- redis backend: several hosts ----------------------------------------------------------


def redis_env(probe_dir, redis_server, **extra):
    return limited_env(probe_dir, WRAPGATE_LIMITER="redis", WRAPGATE_REDIS_URL=redis_server.url, **extra)


def test_two_hosts_share_one_limit_through_redis(start_gateway, probe_dir, redis_server):
    env = redis_env(probe_dir, redis_server, WRAPGATE_LIMIT_WAIT=60)
    hosts = [start_gateway(env, workers=2), start_gateway(env, workers=2)]
    calls = [lambda i=i: export_call(hosts[i % 2].url, "conn-r", 0.05, level=3) for i in range(200)]
    results = burst(calls, threads=60)
    assert [r.status_code for r in results] == [200] * 200
    seen = probe(probe_dir, "conn-r")
    assert seen["max"] == 3 and seen["calls"] == 200


def test_two_hosts_two_connections_each_reach_their_level_through_redis(
    start_gateway, probe_dir, redis_server
):
    env = redis_env(probe_dir, redis_server, WRAPGATE_LIMIT_WAIT=60)
    hosts = [start_gateway(env, workers=2), start_gateway(env, workers=2)]
    calls = [lambda i=i: export_call(hosts[i % 2].url, "conn-r3", 0.3, level=3) for i in range(30)] + [
        lambda i=i: export_call(hosts[i % 2].url, "conn-r25", 0.3, level=25) for i in range(100)
    ]
    assert all(r.status_code == 200 for r in burst(calls, threads=70))
    assert probe(probe_dir, "conn-r3")["max"] == 3
    assert probe(probe_dir, "conn-r25")["max"] == 25


def test_redis_429_past_the_wait_bound(start_gateway, probe_dir, redis_server):
    server = start_gateway(redis_env(probe_dir, redis_server, WRAPGATE_LIMIT_WAIT=0.5), workers=2)
    results = burst([lambda: export_call(server.url, "conn-r429", 2, level=1)] * 4, threads=4)
    assert sorted(r.status_code for r in results) == [200, 429, 429, 429]


def test_redis_lease_of_a_killed_worker_expires(start_gateway, probe_dir, redis_server):
    server = start_gateway(
        redis_env(probe_dir, redis_server, WRAPGATE_LIMIT_WAIT=30, WRAPGATE_LEASE_SECONDS=2), workers=1
    )
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(lambda: export_call(server.url, "conn-rkill", 60, level=1, timeout=90))
        wait_until(lambda: probe(probe_dir, "conn-rkill")["now"] == 1, 10, what="slot held")
        time.sleep(2.5)  # longer than the lease: only renewal has kept it
        (holder_pid,) = probe(probe_dir, "conn-rkill")["pids"]
        os.kill(holder_pid, signal.SIGKILL)
        started = time.monotonic()
        r = export_call(server.url, "conn-rkill", 0, level=1, timeout=30)
        assert r.status_code == 200
        # Freed within the lease (2 s) plus one recheck (1 s) and a new worker's boot.
        assert time.monotonic() - started < 10
        with pytest.raises(requests.ConnectionError):
            holder.result()


def test_long_call_keeps_its_redis_slot_past_the_lease(start_gateway, probe_dir, redis_server):
    server = start_gateway(
        redis_env(probe_dir, redis_server, WRAPGATE_LIMIT_WAIT=30, WRAPGATE_LEASE_SECONDS=1), workers=2
    )
    results = burst([lambda: export_call(server.url, "conn-long", 3, level=1)] * 2, threads=2)
    # Renewed every third of a second, the first call's lease never lapsed: never two at once.
    assert [r.status_code for r in results] == [200, 200]
    assert probe(probe_dir, "conn-long")["max"] == 1


@pytest.mark.parametrize("policy, expected", [("closed", 503), ("local", 200)])
def test_unreachable_redis_follows_the_configured_policy(start_gateway, probe_dir, policy, expected):
    from support import free_port

    server = start_gateway(
        limited_env(
            probe_dir,
            WRAPGATE_LIMITER="redis",
            WRAPGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            WRAPGATE_LIMITER_FAILURE=policy,
        ),
        workers=1,
    )
    r = export_call(server.url, "conn-noredis", 0, level=2)
    assert r.status_code == expected
    if expected == 503:
        assert r.json()["errors"][0]["code"] == "limiter_unavailable"
    assert "redis limiter unavailable" in server.log()


def test_a_dead_arbiter_is_restarted_and_limits_again(start_gateway, probe_dir):
    import re

    server = start_gateway(limited_env(probe_dir, WRAPGATE_LIMIT_WAIT=30), workers=2)
    first = int(re.search(r"local limiter arbiter pid (\d+)", server.log()).group(1))
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: "restarting it" in server.log(), 10, what="the master noticing")
    # Calls in the gap wait for the new arbiter (up to 2 s) instead of failing.
    # The new arbiter limits as the old one did.
    results = burst([lambda: export_call(server.url, "conn-again", 0.1, level=2)] * 20, threads=10)
    assert [r.status_code for r in results] == [200] * 20
    assert probe(probe_dir, "conn-again")["max"] == 2


def test_gunicorn_without_the_gateways_configuration_warns_that_limits_are_per_worker(testkit_site, tmp_path):
    from support import TESTKIT

    from gateway.testing import GatewayProcess

    plain = tmp_path / "plain.conf.py"
    plain.write_text("worker_class = 'gevent'\nworkers = 2\n")
    server = GatewayProcess(
        tmp_path, env={"WRAPGATE_PLUGINS": "kit"}, pythonpath=[testkit_site, TESTKIT], config=str(plain)
    )
    server.args = ("--bind", f"127.0.0.1:{server.port}")  # a plain config ignores WRAPGATE_BIND
    with server:
        assert "limits count per worker process" in server.log()
