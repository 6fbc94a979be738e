"""The gunicorn worker class: gevent, plus a drain that loses nothing.

gunicorn's gevent worker, on SIGTERM, stops accepting and waits for every
connection to end, including idle keep-alive connections that would sit
until the keep-alive timeout (minutes, set above load balancers' idle
timeouts) and so hold up every deploy. This worker drains in steps:

1. ``/readyz`` answers 503 at once, so a balancer stops sending new calls;
2. for ``WRAPGATE_DRAIN_DELAY`` seconds it keeps serving (balancers need a
   few probe periods to notice; 0 by default);
3. it stops accepting, closes idle keep-alive connections, and lets in-flight
   calls finish and send their whole responses (each with ``Connection:
   close``), within ``graceful_timeout``; then the worker exits.
"""

from __future__ import annotations

import os

import gevent
from gunicorn.workers.ggevent import GeventWorker


class _IdleWait:
    """The wait for a keep-alive connection's next request, which a drain may end."""

    __slots__ = ("greenlet", "timer", "worker")

    def __init__(self, worker: WrapgateWorker):
        self.worker = worker
        # `False`: when it fires, the context ends quietly and gunicorn closes the connection.
        self.timer = gevent.Timeout(worker.cfg.keepalive, False)

    def __enter__(self):
        self.greenlet = gevent.getcurrent()
        self.worker.idle[self.greenlet] = self.timer
        return self.timer.__enter__()

    def __exit__(self, *exc):
        self.worker.idle.pop(self.greenlet, None)
        return self.timer.__exit__(*exc)


class WrapgateWorker(GeventWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle: dict = {}
        self.drain_delay = float(os.environ.get("WRAPGATE_DRAIN_DELAY") or 0)
        self._draining = False

    def timeout_ctx(self):
        return _IdleWait(self)

    def handle_exit(self, sig, frame):
        # In a signal handler: do the work in a greenlet, as gunicorn's handle_quit does.
        if not self._draining:
            self._draining = True
            gevent.spawn(self._drain)

    def _drain(self) -> None:
        state = getattr(self.wsgi, "extensions", {}).get("wrapgate")
        if state is not None:
            state.draining.set()
        self.log.info(
            "worker %s draining: readyz 503; serving %.0f s more, then finishing in-flight calls",
            self.pid,
            self.drain_delay,
        )
        if self.drain_delay > 0:
            gevent.sleep(self.drain_delay)
        self.alive = False  # the run loop stops accepting; responses now close their connections
        for greenlet, timer in list(self.idle.items()):
            # Raising a Timeout(…, False) inside its own context ends it as if it expired.
            greenlet.kill(timer, block=False)
