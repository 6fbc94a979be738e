"""Chaos soak: mixed calls against a real gunicorn while faults are injected.

    .venv/bin/python bench/chaos.py [--seconds 15] [--clients 12]

Not part of CI (minutes long, kills processes). For each fault it runs a soak
of its own (fresh connection ids): ``--clients`` threads call limited probe
exports (3 connections, level 2 each), pings and exports on 127.0.0.1; the
fault is injected a third of the way in. It reports, per fault:

* answered: calls that got an HTTP answer (any status), by status;
* lost: calls that got none (connection reset, or no answer within 60 s);
* over-level: the most calls of one connection inside the plugin at once,
  minus its level (the ``probe`` test connector counts them across workers);
* killed inside: calls that never left the plugin (their worker was killed),
  which the probe keeps counting, so over-level is read against it.

Faults: none, a worker killed (SIGKILL), the arbiter killed, the arbiter hung
(SIGSTOP), Redis restarted empty (redis limiter), a plugin that spins the CPU
past its deadline / calls sys.exit() / os._exit() (the ``faulty`` test connector).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test plugins and their fixtures' helpers

from support import TESTKIT, RedisServer, write_testkit_site  # noqa: E402

from gateway.testing import TOKEN, GatewayProcess  # noqa: E402

LEVEL = 2
FAULTY = "[wrapgate]\nfaulty = wrapgate_testkit.faulty\n"


def call(url, function, options, timeout=60):
    body = {"diy": True, "function": function, "options": options}
    return requests.post(
        url + "/function", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=timeout
    )


def workload(url, fault, probe_dir, stop, tally, lock, with_faulty):
    rng = random.Random()
    while not stop.is_set():
        pick = rng.random()
        if pick < 0.6:
            conn = f"{fault}-c{rng.randrange(3)}"
            options = {
                "connection": {"_id": conn, "concurrencyLevel": LEVEL},
                "configuration": {"sleep": rng.uniform(0.05, 0.4)},
            }
            function = "probe.export"
        elif pick < 0.8 or not with_faulty:
            function, options = "kit.ping", {"connection": {"_id": f"{fault}-ping"}}
        else:
            do = rng.choice(["spin", "sys_exit", "os_exit", "sleep"])
            function = "faulty.ping"
            options = {"connection": {"_id": f"{fault}-faulty", "unencrypted": {"do": do, "seconds": 4}}}
        try:
            status = call(url, function, options).status_code
        except requests.RequestException as exc:
            status = f"lost ({type(exc).__name__})"
        with lock:
            tally[status] += 1


def over_level(probe_dir, fault):
    """(most calls of one connection at once minus its level, calls that never left the plugin).

    A call killed inside the plugin (its worker SIGKILLed) never leaves the probe's
    count, so each such call may show as one over the level afterwards: read
    over-level against ``killed_inside``."""
    worst = stale = 0
    for path in Path(probe_dir).glob(f"{fault}-c*.json"):
        state = json.loads(path.read_text())
        worst = max(worst, state["max"] - LEVEL)
        stale += state["now"]
    return worst, stale


def arbiter_pid(server):
    pids = re.findall(r"(?:local limiter arbiter pid|limiter arbiter restarted: pid) (\d+)", server.log())
    return int(pids[-1])


def run_fault(fault, inject, env, seconds, clients, site, folder, with_faulty=False):
    probe_dir = Path(tempfile.mkdtemp(prefix="chaos-probe-", dir=folder))
    env = dict(env, WRAPGATE_TEST_PROBE_DIR=str(probe_dir), WRAPGATE_CALL_TIMEOUT="2")
    server = GatewayProcess(folder, env=env, workers=2, pythonpath=[site, TESTKIT])
    server.start(60)
    tally: collections.Counter = collections.Counter()
    lock, stop = threading.Lock(), threading.Event()
    threads = [
        threading.Thread(target=workload, args=(server.url, fault, probe_dir, stop, tally, lock, with_faulty))
        for _ in range(clients)
    ]
    for t in threads:
        t.start()
    time.sleep(seconds / 3)
    note = inject(server) if inject else ""
    time.sleep(seconds * 2 / 3)
    stop.set()
    for t in threads:
        t.join(90)
    server.stop(60)
    lost = sum(n for status, n in tally.items() if isinstance(status, str))
    answered = sum(tally.values()) - lost
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items(), key=lambda kv: str(kv[0])))
    worst, stale = over_level(probe_dir, fault)
    return {
        "fault": fault,
        "answered": answered,
        "lost": lost,
        "over_level": worst,
        "killed_inside": stale,
        "statuses": statuses,
        "note": note,
    }


def kill_worker(server):
    pid = server.workers()[0]
    os.kill(pid, signal.SIGKILL)
    return f"SIGKILL worker {pid}"


def kill_arbiter(server):
    pid = arbiter_pid(server)
    os.kill(pid, signal.SIGKILL)
    return f"SIGKILL arbiter {pid}"


def hang_arbiter(server):
    pid = arbiter_pid(server)
    os.kill(pid, signal.SIGSTOP)
    return f"SIGSTOP arbiter {pid}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=12)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wrapgate-chaos-"))
    site = write_testkit_site(folder / "site")
    info = site / "wrapgate_faultkit-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wrapgate-faultkit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(FAULTY)
    base = {"WRAPGATE_PLUGINS": "probe,kit,faulty", "WRAPGATE_LIMIT_WAIT": "30"}
    redis = RedisServer(folder).start()

    def restart_redis(server):
        redis.stop()
        redis.start()
        return "redis restarted empty"

    redis_env = dict(base, WRAPGATE_LIMITER="redis", WRAPGATE_REDIS_URL=redis.url, WRAPGATE_LEASE_SECONDS="3")
    plan = [
        ("none", None, base, False),
        ("worker-kill", kill_worker, base, False),
        ("arbiter-kill", kill_arbiter, base, False),
        ("arbiter-hang", hang_arbiter, base, False),
        ("redis-restart", restart_redis, redis_env, False),
        ("plugin-misdeeds", None, base, True),
    ]
    rows = []
    try:
        for fault, inject, env, with_faulty in plan:
            row = run_fault(fault, inject, env, args.seconds, args.clients, site, folder, with_faulty)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        redis.stop()
    print("\n| fault | answered | lost | over-level | killed inside | statuses |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['fault']} | {r['answered']} | {r['lost']} | {r['over_level']} | {r['killed_inside']} "
            f"| {r['statuses']} |"
        )
    subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    main()
