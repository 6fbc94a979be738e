"""Connector ``faulty``: a careless or hostile plugin, its misdeed chosen by the call.

``connection.unencrypted.do`` picks what ``ping`` does; ``seconds`` how long.
Used by tests/test_faults.py only (its own entry points, not support.ENTRY_POINTS).
"""

import gc
import os
import sys
import time

import gevent

from gateway import hookimpl

_hoard = []
# The worker's own event loop, as a plugin that spawns work at import would hold it.
_worker_hub = gevent.get_hub()


def _spin(seconds):
    # Pure CPU: never yields to gevent's loop.
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


@hookimpl
def wrapgate_ping(unencrypted):
    do = unencrypted.get("do", "ok")
    seconds = float(unencrypted.get("seconds", 1))
    if do == "spin":
        _spin(seconds)
    elif do == "sleep":
        time.sleep(seconds)
    elif do == "swallow":
        # Catches every interruption, the deadline's included, and carries on.
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                time.sleep(0.05)
            except BaseException:  # noqa: BLE001 - the misdeed under test
                pass
    elif do == "sys_exit":
        sys.exit(4)
    elif do == "os_exit":
        os._exit(3)
    elif do == "base":
        raise BaseException("plugin gave up")
    elif do == "interrupt":
        raise KeyboardInterrupt
    elif do == "greenlet_exit":
        # A greenlet on the worker's loop that raises SystemExit with a halting status.
        _worker_hub.loop.run_callback_threadsafe(gevent.spawn, sys.exit, 4)
    elif do == "greenlet_os_exit":
        # A greenlet on the worker's loop that ends the process with a halting status.
        _worker_hub.loop.run_callback_threadsafe(gevent.spawn_later, 0.2, os._exit, 3)
    elif do == "gc":
        return {
            "statusCode": 200,
            "frozen": gc.get_freeze_count(),
            "collecting": gc.isenabled(),
            "thresholds": gc.get_threshold(),
        }
    elif do == "hoard":
        _hoard.append(bytearray(int(unencrypted.get("mib", 64)) * 1024 * 1024))
        return {"statusCode": 200, "pid": os.getpid()}
    return {"statusCode": 200, "pid": os.getpid()}
