"""Prometheus metrics, correct across gunicorn workers.

Under gunicorn the master points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
folder before forking (``gateway/gunicorn_conf.py``); every worker writes its
samples there and ``/metrics``, whichever worker answers, adds up all of them
(prometheus_client's multiprocess mode). Without it (an embedded app, tests
in-process) each app has a registry of its own.

Labels are chosen for bounded cardinality: connector and function names come
from the loaded plugins, routes from the app's rules; never a path or a value a
client made up. Connection ids and outcomes (error codes, which a plugin may
choose) are bounded per worker: the first ``connections`` connection ids (and
:data:`MAX_OUTCOMES` outcomes) a worker sees get series of their own, later
ones count under ``other``. ``connections=0`` labels no connection at all.

The metrics are fed the way any plugin is: :class:`MetricsPlugin` implements
the observing hooks (``wrapgate_call_done`` and the ``wrapgate_slot_*`` hooks of
:mod:`gateway.hookspecs`) and ``create_app`` registers it with the app's plugins.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .calls import CallContext

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
# Wrapper calls run from milliseconds (ping) to minutes (a slow export).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
SIZE_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 5242880, 16777216)
OTHER = "other"
MAX_OUTCOMES = 64


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS))


class Metrics:
    """The gateway's metrics (fed by :class:`MetricsPlugin` and the app's routes)."""

    def __init__(self, connections: int = 100) -> None:
        self._labels = {"connection": _Bounded(connections), "outcome": _Bounded(MAX_OUTCOMES)}
        self.multiprocess = multiprocess_mode()
        # In multiprocess mode samples live in files, not in a registry object.
        self.registry = None if self.multiprocess else CollectorRegistry()
        kw: dict[str, Any] = {"registry": self.registry}
        self.calls = Counter(
            "wrapgate_calls",
            "Wrapper calls answered, by connector, function and outcome (ok, or the error code)",
            ["connector", "function", "outcome"],
            **kw,
        )
        self.latency = Histogram(
            "wrapgate_call_duration_seconds",
            "Time to answer a wrapper call",
            ["connector", "function"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.response_bytes = Histogram(
            "wrapgate_response_bytes",
            "Size of answers to wrapper calls",
            ["connector", "function"],
            buckets=SIZE_BUCKETS,
            **kw,
        )
        self.http = Counter(
            "wrapgate_http_requests", "HTTP requests by route and status", ["route", "status"], **kw
        )
        self.in_flight_gauge = Gauge(
            "wrapgate_connection_in_flight",
            "Calls of a connection running now",
            ["connection"],
            multiprocess_mode="livesum",
            **kw,
        )
        self.waiting_gauge = Gauge(
            "wrapgate_connection_waiting",
            "Calls of a connection waiting for a slot",
            ["connection"],
            multiprocess_mode="livesum",
            **kw,
        )
        self.rejected_total = Counter(
            "wrapgate_concurrency_rejections",
            "Calls answered 429 concurrency_limit_exceeded",
            ["connection"],
            **kw,
        )
        self.plugin_loaded = Gauge(
            "wrapgate_plugin_loaded",
            "1 when the plugin loaded, 0 when it failed",
            ["plugin"],
            multiprocess_mode="max",
            **kw,
        )

        # Labelled children by label values: prometheus_client's labels() costs more
        # than the increment itself, on every call.
        self._children: dict[tuple, Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- the connections' slots ---------------------------------------------------------
    def running(self, connection: str, delta: int) -> None:
        self._child(self.in_flight_gauge, self._labels["connection"](connection)).inc(delta)

    def waiting(self, connection: str, delta: int) -> None:
        self._child(self.waiting_gauge, self._labels["connection"](connection)).inc(delta)

    def rejected(self, connection: str) -> None:
        self._child(self.rejected_total, self._labels["connection"](connection)).inc()

    # -- what the app reports ----------------------------------------------------------
    def call_done(self, connector: str, function: str, outcome: str, seconds: float, size: int) -> None:
        connector, function = connector or "none", function or "none"
        outcome = self._labels["outcome"](outcome)
        self._child(self.calls, connector, function, outcome).inc()
        self._child(self.latency, connector, function).observe(seconds)
        self._child(self.response_bytes, connector, function).observe(size)

    def http_request(self, route: str, status: int) -> None:
        self._child(self.http, route, str(status)).inc()

    def plugins(self, connectors: dict[str, Any]) -> None:
        for name, connector in connectors.items():
            self.plugin_loaded.labels(name).set(0 if connector.error else 1)

    def exposition(self) -> tuple[bytes, str]:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        assert self.registry is not None
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsPlugin:
    """The core plugin that feeds :class:`Metrics` from the observing hooks, as
    any outside plugin would (``create_app`` registers it)."""

    def __init__(self, meter: Metrics):
        self.meter = meter

    @hookimpl
    def wrapgate_call_done(
        self, context: CallContext, outcome: str, seconds: float, response_bytes: int
    ) -> None:
        self.meter.call_done(context.connector, context.function, outcome, seconds, response_bytes)

    @hookimpl
    def wrapgate_slot_waiting(self, connection_id: str, delta: int) -> None:
        self.meter.waiting(connection_id, delta)

    @hookimpl
    def wrapgate_slot_running(self, connection_id: str, delta: int) -> None:
        self.meter.running(connection_id, delta)

    @hookimpl
    def wrapgate_slot_rejected(self, connection_id: str) -> None:
        self.meter.rejected(connection_id)


class _Bounded:
    """A label's values: the first ``size`` seen are kept, later ones are ``other``.
    Once kept, a value stays kept, so a gauge's increments and decrements always
    meet in the same series."""

    __slots__ = ("_seen", "_size")

    def __init__(self, size: int):
        self._size = size
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._size:
            self._seen.add(value)
            return value
        return OTHER
