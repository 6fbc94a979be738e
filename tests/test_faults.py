"""Careless and hostile plugins: nothing one does stops the others or the server.

Each test starts its own gunicorn (one worker unless said) with the ``faulty``
connector and plugins whose import ends the process, published by a
distribution of their own (``wrapgate-faultkit``), not the session's testkit.
"""

from __future__ import annotations

import itertools
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support import Gunicorn, wait_until

from gateway.worker import YOUNG_GENERATION

pytestmark = pytest.mark.slow

FAULTKIT = """\
[wrapgate]
faulty = wrapgate_testkit.faulty
exits = wrapgate_testkit.exits_at_import
interrupts = wrapgate_testkit.interrupts_at_import
aborts = wrapgate_testkit.aborts_at_import
"""


@pytest.fixture(scope="module")
def faultkit_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("faultkit")
    info = site / "wrapgate_faultkit-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wrapgate-faultkit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(FAULTKIT)
    return site


@pytest.fixture
def start(faultkit_site, tmp_path):
    started = []

    def start(env=None, workers=1):
        server = Gunicorn(faultkit_site, tmp_path, env=env, workers=workers)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def ping(server, connector="faulty", timeout=30, **unencrypted):
    options = {"connection": {"_id": "c-faults", "unencrypted": unencrypted}}
    return server.call(f"{connector}.ping", options, timeout=timeout)


def boots(server) -> int:
    return len(re.findall(r"Booting worker with pid", server.log()))


def test_plugins_that_end_the_process_at_import_are_reported_and_the_others_serve(start):
    server = start({"WRAPGATE_PLUGINS": "faulty,exits,interrupts,aborts"})
    assert ping(server).status_code == 200
    for name, reason in (
        ("exits", "os._exit(3)"),
        ("interrupts", "KeyboardInterrupt"),
        ("aborts", "PluginAbort"),  # a BaseException subclass of the plugin's own
    ):
        answer = ping(server, name)
        assert answer.status_code == 422
        error = answer.json()["errors"][0]
        assert error["code"] == "connector_unavailable"
        # The caller gets a short reason and a reference; the log has the detail.
        reference = error["message"].rsplit("reference ", 1)[1].rstrip(").")
        detail = [line for line in server.log().splitlines() if reference in line]
        assert detail and reason in "".join(detail), server.log()
    time.sleep(1)  # a boot loop would show within a second
    assert boots(server) == 1, server.log()


@pytest.mark.parametrize(
    "do, code",
    [
        ("sys_exit", "SystemExit"),
        ("base", "BaseException"),
        ("interrupt", "KeyboardInterrupt"),
        ("os_exit", "exit_refused"),
    ],
)
def test_a_call_that_ends_with_an_exit_is_answered_logged_and_counted(start, do, code):
    server = start({"WRAPGATE_PLUGINS": "faulty"})
    pid = ping(server).json()["pid"]
    with requests.Session() as keep_alive:  # the client that used to hang
        answer = keep_alive.post(
            server.url + "/function",
            json={
                "diy": True,
                "function": "faulty.ping",
                "options": {"connection": {"unencrypted": {"do": do}}},
            },
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=15,
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["code"] == code
    assert ping(server).json()["pid"] == pid  # the same worker serves on
    assert f"faulty.ping raised {code}" in server.log()
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert re.search(rf'wrapgate_calls_total{{[^}}]*outcome="{code}"[^}}]*}} 1\.0', metrics), metrics
    assert boots(server) == 1


def test_sys_exit_in_a_plugin_greenlet_is_logged_and_the_worker_serves_on(start):
    server = start({"WRAPGATE_PLUGINS": "faulty"})
    first = ping(server).json()["pid"]
    assert ping(server, do="greenlet_exit").status_code == 200
    wait_until(lambda: "a greenlet called sys.exit(4)" in server.log(), 10, 0.1, "the log line")
    assert ping(server).json()["pid"] == first
    assert boots(server) == 1


def test_os_exit_with_a_halting_status_from_a_plugin_greenlet_does_not_halt_the_server(start):
    server = start({"WRAPGATE_PLUGINS": "faulty"})
    first = ping(server).json()["pid"]
    assert ping(server, do="greenlet_os_exit").status_code == 200
    # The worker ends (status 1, not gunicorn's boot-failure 3); the master starts another.
    second = wait_until(lambda: _pid_if_new(server, first), 30, 0.2, "a new worker")
    assert second != first
    assert server.proc.poll() is None
    assert "would halt the server" in server.log()


def _pid_if_new(server, old):
    try:
        pid = ping(server, timeout=5).json()["pid"]
    except requests.RequestException:
        return None
    return pid if pid != old else None


def test_the_deadline_holds_whatever_the_plugin_does_and_others_are_served(start):
    server = start({"WRAPGATE_PLUGINS": "faulty", "WRAPGATE_CALL_TIMEOUT": "2"})
    pid = ping(server).json()["pid"]
    misdeeds = ("spin", "swallow", "sleep", "spin")
    with ThreadPoolExecutor(len(misdeeds) + 1) as pool:
        started = time.monotonic()
        running = [pool.submit(_timed, server, do=do, seconds=8) for do in misdeeds]
        time.sleep(0.5)
        # One worker, two calls spinning its CPU: a quick call is still answered.
        quick_status, quick_seconds = _timed(server)
        answers = [f.result() for f in running]
    assert quick_status == 200 and quick_seconds < 5
    for status, seconds in answers:
        assert status == 504
        assert seconds < 2 + 4  # the deadline plus a generous bound on a shared machine
    assert time.monotonic() - started < 8  # nobody waited for the plugins to finish
    assert ping(server).json()["pid"] == pid


def _timed(server, **unencrypted):
    began = time.monotonic()
    answer = ping(server, **unencrypted)
    return answer.status_code, time.monotonic() - began


def test_a_worker_past_its_memory_bound_is_replaced_after_its_calls(start):
    server = start({"WRAPGATE_PLUGINS": "faulty", "WRAPGATE_MAX_WORKER_MEMORY": "200"})
    first = ping(server, do="hoard", mib=192)
    assert first.status_code == 200  # the call that crossed the bound is answered first
    second = wait_until(lambda: _pid_if_new(server, first.json()["pid"]), 30, 0.2, "a new worker")
    assert second
    assert "above WRAPGATE_MAX_WORKER_MEMORY" in server.log()


def test_a_worker_freezes_the_loaded_heap_and_still_collects(start):
    server = start({"WRAPGATE_PLUGINS": "faulty"})
    answer = ping(server, do="gc").json()
    # The loaded gateway (tens of thousands of objects) is out of the collector's walks...
    assert answer["frozen"] > 10_000, answer
    # ...and the collector still runs for what calls create, a large body's worth
    # of containers at a time in the young generation, the older ones as CPython's.
    assert answer["collecting"] is True, answer
    assert answer["thresholds"] == [YOUNG_GENERATION, 10, 10], answer


def test_a_worker_is_replaced_after_max_requests_with_jitter_and_no_call_is_lost(start):
    server = start(
        {
            "WRAPGATE_PLUGINS": "faulty",
            "WRAPGATE_MAX_REQUESTS": "4",
            "WRAPGATE_MAX_REQUESTS_JITTER": "3",
            "WRAPGATE_LOG_LEVEL": "debug",  # gunicorn logs its configuration
        }
    )
    assert "max_requests: 4" in server.log() and "max_requests_jitter: 3" in server.log()
    pids: list[int] = []
    ends = time.monotonic() + 60
    while len(set(pids)) < 3 and time.monotonic() < ends:
        answer = ping(server)  # each on a new connection (server.call closes it)
        assert answer.status_code == 200, answer.text  # none lost while workers change
        pids.append(answer.json()["pid"])
        time.sleep(0.05)
    runs = [len(list(group)) for _, group in itertools.groupby(pids)]
    assert len(runs) >= 3, runs  # replaced again and again, not once
    # Not before max_requests: the second worker's requests are all ours. (gunicorn's gevent
    # worker notices its limit within a second, so a fast client gets a few more served.)
    assert runs[1] >= 4, runs
    assert "Autorestarting worker after current request" in server.log()
