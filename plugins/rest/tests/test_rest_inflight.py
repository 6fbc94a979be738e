"""Requests in flight to one API from one connection stay within its level
across worker processes (the local arbiter) and across gateways (Redis).

Several import calls of one connection at level 2, each sending its records
four at a time, run at once on real gunicorns; the test API records the most
requests it had in flight. The core holds the calls to 2 at once and the
connector takes one of the core's request permits per request
(``context.permit()``), so the API never sees more than 2. Without the core's
permits (``WRAPGATE_LIMITER=none``: the connector's in-process gate) the same
load on two gateways reaches more than 2, which is what the permits prevent.
"""

import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from options import Gunicorn, conn
from support import RedisServer

LEVEL = 2
CALLS_PER_GATEWAY = 3
RECORDS_PER_CALL = 12


def _import(gateway, api, tag):
    records = [{"name": f"{tag}-{i}", "sleep": 0.05} for i in range(RECORDS_PER_CALL)]
    return gateway.call(
        "rest.import",
        {
            "connection": conn(api, concurrencyLevel=LEVEL),
            "postMapData": records,
            "configuration": {"path": "/items", "idPath": "data.id", "concurrency": 4},
        },
        timeout=120,
    )


def _load(gateways, api):
    """CALLS_PER_GATEWAY import calls sent at once to each gateway; every record
    must be written. Returns the most requests the API had in flight."""
    api.state["max_in_flight"] = 0
    targets = [g for g in gateways for _ in range(CALLS_PER_GATEWAY)]
    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(lambda pair: _import(pair[1], api, pair[0]), enumerate(targets)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert [r["statusCode"] for r in answer.json()] == [200] * RECORDS_PER_CALL
    return api.state["max_in_flight"]


def _senders(port):
    """Pids of the processes with a TCP connection open to ``port`` now."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True
    ).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def test_two_workers_of_one_host_keep_the_connections_requests_within_its_level(api, tmp_path):
    port = int(api.url.rsplit(":", 1)[1])
    # One connection per worker: a worker serving a call accepts no other, so two
    # calls always run at once in the two workers (the rest wait in the backlog).
    env = {"WRAPGATE_PLUGINS": "rest", "WRAPGATE_WORKER_CONNECTIONS": "1"}
    with Gunicorn(tmp_path, env=env, workers=2) as gateway:
        workers = set(gateway.workers())
        seen: set[int] = set()
        done = threading.Event()

        def watch():
            while not done.wait(0.05):
                seen.update(_senders(port))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            # Twice the load of one gateway, sent to its two workers.
            most = _load([gateway, gateway], api)
        finally:
            done.set()
            watcher.join()
        seen.update(_senders(port))
        assert most == LEVEL
        # Both workers sent requests: the bound held across processes, not inside one.
        assert seen & workers == workers, (seen, workers)


@pytest.fixture
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_two_gateways_sharing_redis_keep_the_connections_requests_within_its_level(api, tmp_path, redis_url):
    env = {"WRAPGATE_PLUGINS": "rest", "WRAPGATE_LIMITER": "redis", "WRAPGATE_REDIS_URL": redis_url}
    with Gunicorn(tmp_path, env=env, workers=1) as one, Gunicorn(tmp_path, env=env, workers=1) as two:
        assert _load([one, two], api) == LEVEL
        assert "Cannot switch" not in one.log() + two.log()


def test_without_the_cores_permits_two_gateways_exceed_the_level(api, tmp_path):
    """The same load with no core limiter: each gateway's in-process gate alone."""
    env = {"WRAPGATE_PLUGINS": "rest", "WRAPGATE_LIMITER": "none"}
    with Gunicorn(tmp_path, env=env, workers=1) as one, Gunicorn(tmp_path, env=env, workers=1) as two:
        assert _load([one, two], api) > LEVEL
