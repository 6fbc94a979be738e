"""A request's bookkeeping: its id and log context when it starts, its HTTP metric
and access line when it is answered.

Flask's routes get these from the app's ``before_request``/``after_request``
hooks (:mod:`gateway.app`); ``POST /function`` (:mod:`gateway.endpoint`) calls
them itself. Either way a request is counted and logged the same.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

from . import logs
from .metrics import Metrics

access = logging.getLogger("gateway.access")

# Paths a balancer or a scraper polls every few seconds: no log line for them.
_QUIET = frozenset(("/livez", "/readyz", "/metrics", "/openapi.json"))


def new_request_id() -> str:
    return secrets.token_hex(8)


def begin(environ: MutableMapping[str, Any], traceid: str | None) -> str:
    """Start the request of ``environ``: a new request id, the clock, a fresh log
    context carrying both ids. Returns the request id."""
    request_id = new_request_id()
    environ["wrapgate.request_id"] = request_id
    environ["wrapgate.started"] = time.perf_counter()
    logs.reset()
    logs.bind(request_id=request_id, traceid=traceid)
    return request_id


def done(
    meter: Metrics,
    environ: MutableMapping[str, Any],
    method: str,
    path: str,
    route: str,
    status: int,
    response_bytes: int | None,
) -> None:
    """Count the answer under its ``route`` (the URL rule, or ``unmatched``) and
    write its access line (none for the probes' paths, nor below INFO)."""
    meter.http_request(route, status)
    if path in _QUIET or not access.isEnabledFor(logging.INFO):
        return
    started = environ.get("wrapgate.started")
    access.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started else None,
            "response_bytes": response_bytes,
        },
    )
