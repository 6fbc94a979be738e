"""Running a plugin call under a deadline.

Under gevent (the production worker class) the call runs in the request's own
greenlet inside a ``gevent.Timeout``, which interrupts it at its next I/O: the
external request is really abandoned. Anywhere else (``wrapgate call``, sync
workers, tests in-process) threads cannot be interrupted, so the call runs in
a daemon thread and the caller stops waiting at the deadline; the thread runs
to its end in the background. Either way the caller gets
:class:`~gateway.errors.DeadlineExceeded` at the deadline.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable
from typing import Any

from .errors import DeadlineExceeded


def _gevent_patched() -> bool:
    if "gevent.monkey" not in sys.modules:
        return False
    return sys.modules["gevent.monkey"].is_module_patched("socket")


def call_with_deadline(fn: Callable[[], Any], seconds: float, what: str) -> Any:
    message = f"{what} did not finish within {seconds:g} seconds."
    if _gevent_patched():
        import gevent

        # A bare Timeout is a BaseException: a plugin's `except Exception` cannot swallow it.
        timer = gevent.Timeout(seconds)
        try:
            with timer:
                return fn()
        except gevent.Timeout as fired:
            if fired is not timer:
                raise
            raise DeadlineExceeded(message) from None
    context = contextvars.copy_context()  # the request's log fields follow the call
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = context.run(fn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as is
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"call {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise DeadlineExceeded(message)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
