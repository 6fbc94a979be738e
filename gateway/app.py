"""``create_app()``: the Flask app, its state and the one JSON error shape.

Everything an app needs lives in ``app.extensions["wrapgate"]`` (a
:class:`State`), never in module globals, so tests can build many apps side by
side. Production runs ``gunicorn -c config/gunicorn.conf.py "gateway.app:create_app()"``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, Response, current_app, request
from flask.globals import request_ctx
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from . import config, limits, logs, metrics, serialize
from .auth import ClientAddress, FailedTokens, OpsAccess, TokenCheck
from .calls import Gateway
from .catalog_routes import bp as catalog_bp
from .config import Settings
from .errors import GatewayError, shape
from .plugins import Registry
from .routes import bp, new_request_id

log = logging.getLogger("gateway.app")
access = logging.getLogger("gateway.access")


@dataclass
class State:
    settings: Settings
    registry: Registry
    gateway: Gateway
    check_token: TokenCheck
    metrics: metrics.Metrics
    #: who may read /metrics and /openapi.json
    ops_access: OpsAccess
    #: set when the process starts draining: /readyz answers 503 from then on
    draining: threading.Event = field(default_factory=threading.Event)
    #: the OpenAPI document, serialised on first request
    openapi: bytes | None = None


class App(Flask):
    """Flask, with ``OPTIONS`` answered in JSON like every other answer."""

    def make_default_options_response(self) -> Response:
        """``{"allow": [...]}`` with the route's methods, sorted as its ``Allow`` header."""
        adapter = request_ctx.url_adapter
        methods = sorted(adapter.allowed_methods()) if adapter is not None else []
        return Response(
            serialize.dumps({"allow": methods}),
            headers={"Allow": ", ".join(methods)},
            mimetype="application/json",
        )


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Flask:
    """Build the gateway.

    :param settings: defaults to :func:`gateway.config.load` (file and environment).
    :param registry: defaults to every installed plugin (``WRAPGATE_PLUGINS``
        narrows it); pass one to embed the gateway with plugins of your own.
    """
    settings = settings or config.load()
    logs.configure(settings.log_level, settings.log_format)
    if registry is None:
        registry = Registry()
        registry.load_entry_points(allow=settings.plugins, strict=settings.strict_plugins)
    app = App("gateway")
    # Flask turns an over-long body into a 413 before any of it is parsed.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False
    gateway = Gateway(settings, registry, limits.build(settings, registry.notify))
    meter = metrics.Metrics(settings.metrics_connections)
    meter.plugins(registry.connectors)
    # The core's metrics observe calls and slots through the hooks other plugins use.
    registry.pm.register(metrics.MetricsPlugin(meter), name=f"wrapgate.metrics.{id(meter)}")
    client = ClientAddress(settings.forwarded_allow_ips)
    failures = FailedTokens(settings.failed_token_limit)
    metrics_check = TokenCheck([settings.metrics_token], failures, client) if settings.metrics_token else None
    app.extensions["wrapgate"] = State(
        settings=settings,
        registry=registry,
        gateway=gateway,
        check_token=TokenCheck(settings.system_tokens, failures, client),
        metrics=meter,
        ops_access=OpsAccess(metrics_check, settings.metrics_open, client),
    )
    app.register_blueprint(bp)
    app.register_blueprint(catalog_bp)  # GET /plugins, POST /validate
    app.before_request(_begin)
    app.after_request(_access_log)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(GatewayError, _gateway_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


# Paths a balancer or a scraper polls every few seconds: no log line for them.
_QUIET = frozenset(("/livez", "/readyz", "/metrics", "/openapi.json"))


def _begin() -> None:
    # One proxy lookup, not one per attribute (the proxy's method is untyped).
    req = request._get_current_object()  # type: ignore[attr-defined]
    request_id = new_request_id()
    req.environ["wrapgate.request_id"] = request_id
    req.environ["wrapgate.started"] = time.perf_counter()
    logs.reset()
    logs.bind(request_id=request_id, traceid=req.headers.get("traceid"))


def _access_log(response: Response) -> Response:
    req = request._get_current_object()  # type: ignore[attr-defined]
    route = req.url_rule.rule if req.url_rule is not None else "unmatched"
    current_app.extensions["wrapgate"].metrics.http_request(route, response.status_code)
    if req.path in _QUIET or not access.isEnabledFor(logging.INFO):
        return response
    started = req.environ.get("wrapgate.started")
    access.info(
        "%s %s %s",
        req.method,
        req.path,
        response.status_code,
        extra={
            "method": req.method,
            "path": req.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started else None,
            "response_bytes": response.content_length,
        },
    )
    return response


def _json(exc: BaseException) -> Response:
    status, body, headers = shape(exc)
    logs.bind(error=body["errors"][0]["code"])
    return Response(serialize.dumps(body), status=status, headers=headers, mimetype="application/json")


def _code(exc: HTTPException) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def _http_error(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors (400, 404, 405, 413...) as the one JSON error shape."""
    if exc.code is None or exc.code >= 500:
        return _unexpected_error(exc)
    headers = {k: _sorted_allow(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"}
    message = exc.description or exc.name
    if exc.code == 413:
        limit = request.max_content_length
        message = f"Request body exceeds the limit of {limit} bytes."
    elif exc.code == 404:
        message = f"No route {request.path}; the gateway serves POST /function."
    elif exc.code == 405:
        message = f"{request.method} is not allowed on {request.path}."
    return _json(GatewayError(message, code=_code(exc), status=exc.code, headers=headers))


def _sorted_allow(name: str, value: str) -> str:
    # werkzeug lists a 405's methods in the order of a set: the same on every answer, sorted.
    if name.lower() != "allow":
        return value
    return ", ".join(sorted(method.strip() for method in value.split(",")))


def _gateway_error(exc: GatewayError) -> Response:
    return _json(exc)


def _unexpected_error(exc: Exception) -> Response:
    request_id = request.environ.get("wrapgate.request_id", "")
    logs.bind(error="internal_error")
    log.error("unexpected failure serving %s %s", request.method, request.path, exc_info=exc)
    message = f"The gateway failed unexpectedly; its log has request {request_id}."
    return _json(GatewayError(message, code="internal_error", status=500))
