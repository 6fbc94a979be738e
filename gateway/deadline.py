"""Running a plugin call under a deadline that the plugin cannot hold up.

The call runs on a real OS thread while the caller waits for it with a
timeout, so the caller gets :class:`~gateway.errors.DeadlineExceeded` at the
deadline whatever the plugin does: sleep, block in a C call, spin the CPU,
or catch ``BaseException`` to swallow an interruption. Under gevent (the
production worker) the request's greenlet waits on a gevent thread pool, so
the worker's other calls keep being served meanwhile (a spinning plugin
thread shares the GIL, it no longer owns the event loop); elsewhere
(``wrapgate call``, tests in-process) it waits on a plain thread, parked and
reused between calls (:class:`_Runner`). A thread cannot be killed: a call
past its deadline is *abandoned* and runs to its end in the background;
:func:`runaway` reports abandoned calls that still run long after, so that
the worker can be replaced (``gateway.worker``).

``bench/deadline_cost.py`` measured the choice: see its docstring.

A plugin that ends its call with ``sys.exit()``, ``KeyboardInterrupt`` or any
other ``BaseException`` gets :class:`CallAborted` instead, an ordinary
exception the gateway answers (422), logs and counts like any other.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .errors import DeadlineExceeded

#: Threads a worker may run plugin calls on at once; gunicorn's worker
#: connections cap the calls in flight well below it.
POOL_SIZE = 2000

_local = threading.local()
_abandoned: dict[int, tuple[str, float]] = {}  # call number -> (what, deadline)
_numbers = itertools.count()
# A deadline's error -> how to act once its abandoned call ends (see after_abandoned).
_later: weakref.WeakKeyDictionary[BaseException, Callable[[Callable[[], None]], None]] = (
    weakref.WeakKeyDictionary()
)
_pool: Any = None
_pool_pid = 0


class CallAborted(Exception):
    """A plugin call ended with a ``BaseException`` that is no error (``sys.exit()``,
    ``KeyboardInterrupt``...): the worker must not end with it, the caller gets it shaped."""

    def __init__(self, exc: BaseException):
        self.code = type(exc).__name__
        detail = f": {exc}" if str(exc) else ""
        super().__init__(f"The function ended the call with {self.code}{detail}.")


def in_plugin_call() -> bool:
    """True on a thread running a plugin call (``os._exit`` is refused there)."""
    return getattr(_local, "calling", False)


def runaway(grace: float) -> list[str]:
    """Calls abandoned at their deadline that still ran ``grace`` seconds after it."""
    now = time.monotonic()
    return [what for what, deadline in list(_abandoned.values()) if now - deadline > grace]


def call_with_deadline(fn: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    number = next(_numbers)
    context = contextvars.copy_context()  # the request's log fields follow the call
    outcome: dict[str, Any] = {}

    def run() -> None:
        _local.calling = True
        try:
            outcome["value"] = context.run(fn)
        except Exception as exc:  # noqa: BLE001 - handed to the caller as is
            outcome["error"] = exc
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in a plugin ends its call, not the worker
            outcome["error"] = CallAborted(exc)
        finally:
            _local.calling = False
            _abandoned.pop(number, None)

    if _gevent_patched():
        later = _wait_gevent(run, seconds)
    else:
        later = _wait_thread(run, seconds, what)
    if later is not None:
        _abandoned[number] = (what, deadline)
        if "value" in outcome or "error" in outcome:  # it ended as the wait did
            _abandoned.pop(number, None)
        error = DeadlineExceeded(f"{what} did not finish within {seconds:g} seconds.")
        _later[error] = later
        raise error
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _gevent_patched() -> bool:
    if "gevent.monkey" not in sys.modules:
        return False
    return sys.modules["gevent.monkey"].is_module_patched("socket")


def after_abandoned(error: BaseException, action: Callable[[], None]) -> bool:
    """Run ``action`` once the call that ``error`` abandoned at its deadline really ends
    (the limiter keeps the call's slot until then: the external system still sees it).
    False, and nothing done, when ``error`` is no such abandonment."""
    later = _later.pop(error, None)
    if later is None:
        return False
    later(action)
    return True


Later = Callable[[Callable[[], None]], None]


def _wait_gevent(run: Callable[[], None], seconds: float) -> Later | None:
    """None when ``run`` finished within ``seconds``; else how to act once it does."""
    import gevent
    from gevent.threadpool import ThreadPool

    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():  # a forked worker needs threads of its own
        _pool, _pool_pid = ThreadPool(POOL_SIZE), os.getpid()
    result = None
    # The timer covers a wait for a free thread as well as the call itself.
    with gevent.Timeout(seconds, False):
        result = _pool.spawn(run)
        result.get()
        return None
    if result is None:  # never started: nothing to wait for
        return lambda action: action()

    # Greenlets of the worker's own loop: actions touch its sockets, never a pool thread.
    def later(action: Callable[[], None]) -> None:
        gevent.spawn(_after, result, action)

    return later


def _after(result: Any, action: Callable[[], None]) -> None:
    result.wait()
    action()


def _wait_thread(run: Callable[[], None], seconds: float, what: str) -> Later | None:
    done = threading.Event()

    def job() -> None:
        threading.current_thread().name = f"call {what}"
        try:
            run()
        finally:
            done.set()

    _Runner.take().start(job)
    if done.wait(seconds):
        return None

    def later(action: Callable[[], None]) -> None:
        threading.Thread(target=_wait_then, args=(done, action), daemon=True).start()

    return later


def _wait_then(done: threading.Event, action: Callable[[], None]) -> None:
    done.wait()
    action()


class _Runner:
    """A daemon thread that runs calls one after another, parked in between: a call
    outside gevent starts no thread of its own (as the gevent path's pool does), which
    cost about 0.3 ms of CPU per call (bench/sql_bench.py). An abandoned call keeps
    its runner until it ends; at most ``IDLE`` runners wait parked, the others end."""

    IDLE = 16
    _parked: list[_Runner] = []
    _pid = 0
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.job: Callable[[], None] | None = None
        self.wake = threading.Semaphore(0)
        threading.Thread(target=self._loop, name="call", daemon=True).start()

    @classmethod
    def take(cls) -> _Runner:
        with cls._lock:
            if cls._pid != os.getpid():  # a forked process has none of its parent's threads
                cls._parked, cls._pid = [], os.getpid()
            if cls._parked:
                return cls._parked.pop()
        return cls()

    def start(self, job: Callable[[], None]) -> None:
        self.job = job
        self.wake.release()

    def _loop(self) -> None:
        while True:
            self.wake.acquire()
            job, self.job = self.job, None
            if job is not None:
                job()
            # A parked runner must not hold its last call: the job's closure holds the
            # call's result (an export's page) until the runner's next call.
            job = None
            threading.current_thread().name = "call"
            with self._lock:
                if len(self._parked) >= self.IDLE or self._pid != os.getpid():
                    return
                self._parked.append(self)
