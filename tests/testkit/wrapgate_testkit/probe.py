"""Connector ``probe``: slow calls that count themselves.

Each call records, per connection id, how many calls of that connection are
inside a plugin at that moment, across every worker and host: a counter file
in ``WRAPGATE_TEST_PROBE_DIR`` under an exclusive lock. The critical section
never yields to gevent (regular-file I/O does not), so greenlets of one worker
cannot deadlock on the lock.
"""

import fcntl
import json
import os
import time
from pathlib import Path

from gateway import hookimpl


def _update(connection_id, delta):
    folder = Path(os.environ["WRAPGATE_TEST_PROBE_DIR"])
    path = folder / f"{connection_id}.json"
    with open(folder / f"{connection_id}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = (
                json.loads(path.read_text())
                if path.exists()
                else {"now": 0, "max": 0, "calls": 0, "pids": []}
            )
            state["now"] += delta
            if delta > 0:
                state["pids"].append(os.getpid())
            else:
                state["pids"].remove(os.getpid())
            state["max"] = max(state["max"], state["now"])
            state["calls"] += delta > 0
            # Replaced whole, so that a reader without the lock never sees a half-written file.
            scratch = path.with_suffix(f".{os.getpid()}.tmp")
            scratch.write_text(json.dumps(state))
            os.replace(scratch, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _probe(connection, seconds):
    connection_id = str(connection.get("_id"))
    _update(connection_id, +1)
    try:
        time.sleep(seconds)
    finally:
        _update(connection_id, -1)
    return os.getpid()


@hookimpl
def wrapgate_ping(connection, unencrypted):
    _probe(connection, float(unencrypted.get("sleep", 0)))


@hookimpl
def wrapgate_export(connection, configuration):
    pid = _probe(connection, float((configuration or {}).get("sleep", 0)))
    return {"data": [{"pid": pid}], "lastPage": True}
