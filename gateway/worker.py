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

Each client connection keeps its own header and body timeouts
(:mod:`gateway.connections`), and the app reads request bodies through
:class:`gateway.framing.Framing`, installed here when the app loads: gunicorn's
framing errors answer 400, a chunked body over the limit 413, and an answer
sent before the body's end closes the connection.

It also keeps one worker's faults its own:

* **recycling**: a worker whose resident memory passes ``max_worker_memory``
  MiB (a plugin that keeps what it loaded), or that runs a call abandoned at
  its deadline long after it (:func:`gateway.deadline.runaway`), stops
  accepting and exits once its calls are answered (step 3 above, without
  touching ``/readyz``); the master starts a fresh one. gunicorn's
  ``max_requests`` with jitter is the backstop.
* **exit status**: gunicorn's master halts the whole server when a worker exits
  with status 3 or 4 (its "boot failed" codes). A plugin's ``sys.exit(3)`` in a
  greenlet, or ``os._exit(4)`` anywhere, would do that; after boot this worker
  exits 1 instead, and ``os._exit`` on a plugin call's thread is refused
  (the call answers 422).
* **early signals**: a stop signal that reaches a worker before gunicorn has
  installed its handlers (gevent's patching takes some 100 ms) is held and acted
  on once they are in, instead of being lost while the master waits
  ``graceful_timeout`` for the worker to end.

It takes its share of new connections, no more: one holding more client
connections than a live sibling leaves the next to that sibling for up to 50 ms
(:mod:`gateway.balance`), so that a client's pool of keep-alive connections is
not piled on whichever worker happened to be running when it was opened.

And it keeps the garbage collector's full passes cheap: once the app is loaded,
everything alive (modules, the app, the plugins) is moved out of the collector's
generations (:func:`gc.freeze`), so a call that parses a large body no longer
has its thousands of short-lived objects trigger walks over the whole loaded
stack (issue 17: about a third of import-1000's CPU). And the young generation
holds :data:`YOUNG_GENERATION` objects instead of 700, so that parsing a body of
1,000 records (some 16,000 containers) sets off one young collection, not two
dozen each walking the body built so far and pushing it into the older
generations, which the next full pass walks again.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from typing import Any, NoReturn

import gevent
import greenlet
from gunicorn import glogging, util
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker

from . import balance, connections, deadline, framing

MiB = 1024 * 1024
#: gunicorn's master halts on these worker exit statuses (WORKER_BOOT_ERROR, APP_LOAD_ERROR).
HALTING_STATUSES = (3, 4)
#: The exit status of a worker that a plugin tried to end with a halting one.
PLUGIN_EXIT_STATUS = 1
#: Seconds between two looks at the worker's memory and abandoned calls.
CHECK_INTERVAL = 1.0
#: An abandoned call still running this long after its deadline gets its worker replaced.
RUNAWAY_GRACE = 30.0
#: Past this share of worker_connections open, idle keep-alive connections are closed.
BUSY_SHARE = 0.75
#: Past this share, a new connection is answered 503 at once (before the worker is full).
SHED_SHARE = 0.9
#: Seconds an idle keep-alive connection waits for its next request while the worker is busy.
BUSY_KEEPALIVE = 1.0


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, with its access line only when ``accesslog`` names a file.

    gunicorn counts its access log as enabled whenever a ``logconfig_dict`` is set
    (the JSON log format sets one) and then builds every request's atoms and a log
    record that no handler writes: about 20 us a request. The gateway writes its
    own access line (``gateway.access``)."""

    @property
    def access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)


class ExitRefused(Exception):
    """``os._exit`` called by a plugin call: it would take every other call of the worker down."""

    code = "exit_refused"


def _rss_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class _IdleWait:
    """The wait for a connection's next request headers, which a drain may end.

    A new connection's first request gets ``header_timeout``; a keep-alive
    connection waits ``keepalive`` for its next one (:data:`BUSY_KEEPALIVE`
    while the worker is busy), then its headers get ``header_timeout`` from
    their first byte (:class:`gateway.connections.Connection`).
    """

    __slots__ = ("connection", "greenlet", "timer", "worker")

    def __init__(self, worker: WrapgateWorker):
        self.worker = worker
        self.greenlet = gevent.getcurrent()
        self.connection = worker.connections.get(self.greenlet)
        if self.connection is not None and not self.connection.served:
            seconds = self.connection.header_timeout
        elif self.connection is not None and not worker.alive:
            # A drain began while the last response went out (handle_request yields after
            # it) and closed the idle connections already: this one closes at once too.
            seconds = 0
        elif worker.busy():
            seconds = min(BUSY_KEEPALIVE, worker.cfg.keepalive)
        else:
            seconds = worker.cfg.keepalive
        # `False`: when it fires, the context ends quietly and gunicorn closes the connection.
        self.timer = gevent.Timeout(seconds, False)

    def __enter__(self):
        self.worker.idle[self.greenlet] = self.timer
        if self.connection is not None:
            self.connection.waiting(self.timer)
        return self.timer.__enter__()

    def __exit__(self, *exc):
        self.worker.idle.pop(self.greenlet, None)
        if self.connection is not None:
            if exc[0] is None:
                self.connection.headers_read()
            else:
                self.connection.wait_ended()
        return self.timer.__exit__(*exc)


class WrapgateWorker(GeventWorker):
    wsgi: Any  # the app, wrapped in gateway.framing.Framing once loaded (load_wsgi)
    #: the server's table of workers' connections (gateway.balance), made by the master
    _table: balance.Table | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # In the master, before the fork: the worker's slot in the shared table.
        table = WrapgateWorker._table
        if table is None or table.owner != os.getpid():
            table = WrapgateWorker._table = balance.Table()
        index = table.claim(self)
        self.balancer = balance.Balancer(table, index) if index is not None else None
        self.idle: dict = {}
        self.state: Any = None  # the app's gateway.app.State, once loaded
        self.connections: dict[Any, connections.Connection] = {}
        self._draining = False
        self._busy_mark = max(1, int(self.worker_connections * BUSY_SHARE))
        self._shed_mark = max(1, int(self.worker_connections * SHED_SHARE))

    @property
    def alive(self) -> bool:
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        # gunicorn ends a worker by setting `alive` false, in more places than this class
        # overrides (max_requests after a call, a changed parent...). Whichever it is, the
        # worker accepts no more: its siblings stop leaving it connections now, and its idle
        # keep-alive connections close (clients reconnect to a worker that serves) instead
        # of holding its exit up for the keep-alive time.
        was = getattr(self, "_alive", False)
        self._alive = value
        if was and not value:
            balancer = getattr(self, "balancer", None)
            if balancer is not None:
                balancer.withdraw()
            if getattr(self, "idle", None):
                # Maybe in a signal handler: the loop does it, as gunicorn's handle_quit.
                gevent.get_hub().loop.run_callback(self._close_idle_waits)

    def _close_idle_waits(self) -> None:
        for waiting, timer in list(self.idle.items()):
            # Raising a Timeout(…, False) inside its own context ends it as if it expired.
            waiting.kill(timer, block=False)

    # -- the worker's first moments ------------------------------------------------

    def init_process(self) -> None:
        # Until gunicorn installs the worker's signal handlers (after gevent's patching,
        # some 100 ms into its life), a stop signal meets the master's handlers that the
        # fork copied, which queue it in this process's copy of the master: lost. The
        # worker then boots and serves on while the master waits graceful_timeout for it
        # (a deploy's SIGTERM arriving as a worker is replaced). Held here, sent again
        # once the real handlers are in (init_signals).
        self._early: list[int] = []
        for signum in EARLY_SIGNALS:
            signal.signal(signum, lambda signum, frame: self._early.append(signum))
        super().init_process()

    def init_signals(self) -> None:
        super().init_signals()
        for signum in getattr(self, "_early", ()):
            os.kill(os.getpid(), signum)

    def busy(self) -> bool:
        return len(self.connections) > self._busy_mark

    # -- one client connection -------------------------------------------------

    def handle(self, listener, client, addr):
        settings = self._settings()
        if settings is None:  # not the gateway's app: gunicorn's own handling
            return super().handle(listener, client, addr)
        if len(self.connections) >= self._shed_mark:
            self._shed(client)
            return None
        greenlet = gevent.getcurrent()
        connection = connections.Connection(
            client, settings.header_timeout, settings.body_timeout, 2 * settings.max_body_bytes + MiB
        )
        self.connections[greenlet] = connection
        try:
            if self.busy():
                self._close_idle()
            return super().handle(listener, connection, addr)
        finally:
            self.connections.pop(greenlet, None)

    def handle_request(self, listener_name, req, sock, addr):
        super().handle_request(listener_name, req, sock, addr)
        if isinstance(sock, connections.Connection):
            sock.flush()  # a response without a body: its held head goes now
        # The response is out and the connection is kept: let every other ready greenlet
        # run before this one reads its next request. Without it, a client whose next
        # request is already buffered is served back to back (a gevent socket's recv and
        # send do not yield when they need not wait), and the worker's other keep-alive
        # connections wait their turn for 100-600 ms (issue 17).
        gevent.sleep(0)

    def _shed(self, client) -> None:
        self.log.warning(
            "worker %s holds %s connections (of %s): answering a new one 503 overloaded",
            self.pid,
            len(self.connections),
            self.worker_connections,
        )
        try:
            client.setblocking(1)
            client.sendall(connections.overloaded_page(retry_after=1))
        except OSError:
            pass
        util.close_graceful(client, timeout=1.0)

    def _close_idle(self) -> None:
        """Close keep-alive connections waiting for a next request (not those mid-headers)."""
        for waiting, timer in list(self.idle.items()):
            connection = self.connections.get(waiting)
            if connection is not None and connection.served and connection.phase == connections.IDLE:
                waiting.kill(timer, block=False)

    def handle_error(self, req, client, addr, exc):
        # gunicorn writes an HTML page for a request it cannot parse: write it as JSON instead.
        page = connections.capture(client)
        super().handle_error(req, page, addr, exc)
        answer = connections.json_error_page(page.written, exc) or page.written
        try:
            util.write_nonblock(client, answer)
        except Exception:  # noqa: BLE001 - the client may be gone; nothing is owed to it
            self.log.debug("failed to send an error page")

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.state = getattr(self.wsgi, "extensions", {}).get("wrapgate")
        if self.state is not None:
            # Request bodies read to their limit, framing errors as 400, unread bodies closed.
            self.wsgi = framing.Framing(self.wsgi, self.state.settings.max_body_bytes)

    def _settings(self) -> Any:
        return self.state.settings if self.state is not None else None

    def timeout_ctx(self):
        return _IdleWait(self)

    def run(self) -> None:
        _guard_exit(self.log)
        _freeze_loaded_heap()
        self._main = gevent.getcurrent()
        hub = gevent.get_hub()
        hub.handle_error = self._greenlet_error(hub.handle_error)
        gevent.spawn(self._watch)
        if self.balancer is not None:
            self.balancer.start()
            # gunicorn's run() makes its servers from this name: ours accept through the balancer.
            ggevent.StreamServer = balance.server_class(self.balancer)
        try:
            super().run()
        except SystemExit as exc:
            if exc.code in HALTING_STATUSES:
                self.log.error(
                    "worker %s: a plugin ended the process with status %s, which would halt the "
                    "server; exiting %s instead",
                    self.pid,
                    exc.code,
                    PLUGIN_EXIT_STATUS,
                )
                raise SystemExit(PLUGIN_EXIT_STATUS) from None
            raise

    def _greenlet_error(self, handle_error: Any) -> Any:
        # gevent raises a greenlet's SystemExit in the main greenlet, which ends the
        # worker and every call on it: a plugin's sys.exit() in a greenlet it spawned
        # is logged instead, and the worker serves on.
        def handle(context: Any, kind: Any, value: Any, tb: Any) -> None:
            if (
                isinstance(context, greenlet.greenlet)
                and isinstance(kind, type)
                and issubclass(kind, SystemExit)
            ):
                if self.alive:
                    self.log.error(
                        "worker %s: a greenlet called sys.exit(%s); ignored, the worker serves on",
                        self.pid,
                        getattr(value, "code", None),
                    )
                return
            handle_error(context, kind, value, tb)

        return handle

    def notify(self):
        super().notify()
        if self.balancer is not None:
            self.balancer.heartbeat()

    def handle_quit(self, sig, frame):
        # gunicorn's quick stop raises SystemExit in a greenlet, which no longer ends
        # the worker (see _greenlet_error): end the main greenlet ourselves.
        self.alive = False
        self.cfg.worker_int(self)
        gevent.get_hub().loop.run_callback(self._main.throw, SystemExit(0))

    def _watch(self) -> None:
        settings = self._settings()
        limit = settings.max_worker_memory if settings is not None else 0
        while self.alive and not self._draining:
            gevent.sleep(CHECK_INTERVAL)
            rss = _rss_mib()
            if limit and rss > limit:
                self.log.warning(
                    "worker %s uses %.0f MiB, above WRAPGATE_MAX_WORKER_MEMORY (%s MiB): "
                    "replacing it once its calls are answered",
                    self.pid,
                    rss,
                    limit,
                )
                self._recycle()
                return
            stuck = deadline.runaway(RUNAWAY_GRACE)
            if stuck:
                self.log.warning(
                    "worker %s still runs %s call(s) abandoned at their deadline over %.0f s ago (%s): "
                    "replacing it once its other calls are answered",
                    self.pid,
                    len(stuck),
                    RUNAWAY_GRACE,
                    ", ".join(sorted(set(stuck))),
                )
                self._recycle()
                return

    def handle_exit(self, sig, frame):
        # In a signal handler: do the work in a greenlet, as gunicorn's handle_quit does.
        if not self._draining:
            self._draining = True
            gevent.spawn(self._drain)

    def _drain(self) -> None:
        state = self.state
        drain_delay = state.settings.drain_delay if state is not None else 0.0
        if state is not None:
            state.draining.set()
        self.log.info(
            "worker %s draining: readyz 503; serving %.0f s more, then finishing in-flight calls",
            self.pid,
            drain_delay,
        )
        if drain_delay > 0:
            gevent.sleep(drain_delay)
        self._stop_accepting()

    def _recycle(self) -> None:
        # Not a host shutdown: readyz stays 200, the master starts a fresh worker.
        self._draining = True
        self._stop_accepting()

    def _stop_accepting(self) -> None:
        # The run loop stops accepting; responses now close their connections; the idle
        # ones close (see `alive`).
        self.alive = False


#: The signals that stop a worker: one arriving before its handlers are in is held.
EARLY_SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT, signal.SIGABRT)

#: Allocations of containers between young collections (CPython's default is 700).
#: Measured with import-1000 (bench.py, shipped configuration, alternating pairs):
#: 7.8-8.8 -> 5.5-6.9 ms CPU a call, p99 56-100 -> 37-53 ms; ping and RSS unchanged.
YOUNG_GENERATION = 20_000


def _freeze_loaded_heap() -> None:
    """Collect the start-up garbage, then freeze what is left: it lives as long as the
    worker, so the collector walking it again on every full pass finds nothing. The
    collector stays on for what calls create, with a young generation of
    :data:`YOUNG_GENERATION` objects (the older generations' thresholds unchanged)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)


def _guard_exit(log: Any) -> None:
    """Keep ``os._exit`` from halting gunicorn's master or ending other calls (see the module)."""
    real_exit = os._exit
    if getattr(real_exit, "wrapgate_guard", False):
        return

    def guarded_exit(status: int) -> NoReturn:
        if deadline.in_plugin_call():
            raise ExitRefused(f"os._exit({status}) in a plugin call is refused; raise an error instead.")
        if status in HALTING_STATUSES:
            log.error(
                "os._exit(%s) would halt the server; the worker exits %s instead", status, PLUGIN_EXIT_STATUS
            )
            sys.stderr.flush()
            status = PLUGIN_EXIT_STATUS
        real_exit(status)

    guarded_exit.wrapgate_guard = True  # type: ignore[attr-defined]
    os._exit = guarded_exit
