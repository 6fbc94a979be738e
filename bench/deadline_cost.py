"""What enforcing the call deadline costs, per option, in a gevent-patched process.

    .venv/bin/python bench/deadline_cost.py [calls]

Options measured (each runs the same plugin function: build a page of N
records, as an export does), sequentially and with 50 greenlets at once:

* ``inline``: the call in the request's greenlet under ``gevent.Timeout``
  (the gateway's former way). Cheapest, but a plugin that spins the CPU or
  catches ``BaseException`` holds the deadline and the whole worker.
* ``watchdog``: inline, plus a native thread that would raise an asynchronous
  exception in the worker's thread at the deadline. Same cost as inline; the
  exception lands in whichever greenlet runs, and a plugin that catches
  ``BaseException`` (or sits in a C call) still holds the deadline.
* ``threadpool``: the call on a gevent ThreadPool thread, the greenlet
  waiting with a timeout (the gateway's way now). Holds the deadline whatever
  the plugin does; the worker's loop keeps serving.
* ``process``: the call in a pre-forked helper process, its result pickled
  back over a socket (the cost floor of a process boundary; a real one would
  also pickle the arguments and pay a fork on each recycled helper). The only
  option that can kill a runaway call.

Prints microseconds per call (median of 3 runs). Numbers compare options
within one run on one machine; they are never asserted.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import pickle  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from gevent.threadpool import ThreadPool  # noqa: E402

RECORDS = 100


def plugin_call():
    return {"data": [{"id": i, "name": f"record {i}", "n": i * 3} for i in range(RECORDS)], "lastPage": True}


def inline(fn):
    with gevent.Timeout(30):
        return fn()


class Watchdog:
    """A native thread checking deadlines; registering one is a dict write."""

    def __init__(self):
        self.deadlines = {}

    def __call__(self, fn):
        key = object()
        self.deadlines[key] = time.monotonic() + 30
        try:
            return fn()
        finally:
            del self.deadlines[key]


class Threads:
    def __init__(self):
        self.pool = ThreadPool(64)

    def __call__(self, fn):
        with gevent.Timeout(30):
            return self.pool.spawn(fn).get()


class Processes:
    """Helpers forked once; one request and one pickled answer per call."""

    def __init__(self, size=4):
        self.free = []
        for _ in range(size):
            parent, child = socket.socketpair()
            if os.fork() == 0:
                parent.close()
                self._serve(child)
            child.close()
            self.free.append(parent)
        self.ready = gevent.lock.Semaphore(size)

    @staticmethod
    def _serve(sock):
        while sock.recv(1):
            data = pickle.dumps(plugin_call())
            sock.sendall(struct.pack("!I", len(data)) + data)
        os._exit(0)

    def __call__(self, fn):
        with self.ready:
            sock = self.free.pop()
            try:
                with gevent.Timeout(30):
                    sock.sendall(b"x")
                    size = struct.unpack("!I", self._exactly(sock, 4))[0]
                    return pickle.loads(self._exactly(sock, size))
            finally:
                self.free.append(sock)

    @staticmethod
    def _exactly(sock, size):
        chunks, got = [], 0
        while got < size:
            chunk = sock.recv(min(65536, size - got))
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


def measure(run, calls, concurrency):
    def once():
        result = run(plugin_call)
        assert len(result["data"]) == RECORDS

    began = time.perf_counter()
    if concurrency == 1:
        for _ in range(calls):
            once()
    else:
        pool = Pool(concurrency)
        for _ in range(calls):
            pool.spawn(once)
        pool.join()
    return (time.perf_counter() - began) / calls * 1e6


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    options = {"inline": inline, "watchdog": Watchdog(), "threadpool": Threads(), "process": Processes()}
    print(f"{calls} calls of a {RECORDS}-record page; microseconds per call (median of 3)")
    print(f"{'option':<12}{'sequential':>12}{'50 at once':>12}")
    for name, run in options.items():
        sequential = statistics.median(measure(run, calls, 1) for _ in range(3))
        concurrent = statistics.median(measure(run, calls, 50) for _ in range(3))
        print(f"{name:<12}{sequential:>12.1f}{concurrent:>12.1f}")


if __name__ == "__main__":
    main()
