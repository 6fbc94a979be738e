"""``create_app()``: the Flask app, its state and the one JSON error shape.

Everything an app needs lives in ``app.extensions["wrapgate"]`` (a
:class:`State`), never in module globals, so tests can build many apps side by
side. Production runs ``gunicorn -c config/gunicorn.conf.py "gateway.app:create_app()"``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import Flask, Response, current_app, request
from flask.globals import request_ctx
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from . import access, answers, config, limits, logs, metrics, serialize
from .auth import ClientAddress, FailedTokens, OpsAccess, TokenCheck
from .calls import Gateway
from .catalog_routes import bp as catalog_bp
from .config import Settings
from .endpoint import FunctionEndpoint
from .errors import GatewayError
from .plugins import Registry
from .routes import bp

log = logging.getLogger("gateway.app")


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
    # Flask picks the handler of the most specific class: each of the three answers alike.
    app.register_error_handler(HTTPException, _error)
    app.register_error_handler(GatewayError, _error)
    app.register_error_handler(Exception, _error)
    # POST /function, the route every call takes, is served without Flask's request machinery.
    app.wsgi_app = FunctionEndpoint(app.wsgi_app, app.extensions["wrapgate"])  # type: ignore[method-assign]
    return app


def _begin() -> None:
    environ = request.environ
    access.begin(environ, environ.get("HTTP_TRACEID"))


def _access_log(response: Response) -> Response:
    # One proxy lookup, not one per attribute (the proxy's method is untyped).
    req = request._get_current_object()  # type: ignore[attr-defined]
    route = req.url_rule.rule if req.url_rule is not None else "unmatched"
    meter = current_app.extensions["wrapgate"].metrics
    access.done(
        meter, req.environ, req.method, req.path, route, response.status_code, response.content_length
    )
    return response


def _error(exc: Exception) -> Response:
    """Any failure of a Flask route, as :func:`gateway.answers.for_error` shapes it."""
    served = answers.Served(
        request.method,
        request.path,
        request.environ.get("wrapgate.request_id", ""),
        request.max_content_length,
    )
    status, body, headers = answers.for_error(exc, served)
    return Response(body, status=status, headers=dict(headers), mimetype="application/json")
