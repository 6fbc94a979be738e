"""HTTP routes: ``POST /function`` and the health probes.

``POST /function`` itself is served by :mod:`gateway.endpoint`, in front of
Flask; the route here reaches the same :func:`gateway.endpoint.serve` for a
path Flask normalises to it, and gives Flask the route's methods (``OPTIONS``, 405).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from . import endpoint, openapi, serialize
from .endpoint import JSON
from .errors import GatewayError

bp = Blueprint("wrapgate", __name__)

_SUCCESS = serialize.dumps({"success": True})


def state():
    """The app's :class:`gateway.app.State` (plugins, settings, limiter...)."""
    return current_app.extensions["wrapgate"]


@bp.post("/function")
def function() -> Response:
    # Reached only for a path Flask normalises to /function: gateway.endpoint serves the route.
    answer = endpoint.serve(state(), request.environ)
    return Response(answer.body, status=answer.status, headers=dict(answer.headers), mimetype=JSON)


@bp.get("/")
@bp.get("/healthCheck")
def health() -> Response:
    return Response(_SUCCESS, mimetype=JSON)


@bp.get("/livez")
def livez() -> Response:
    return Response(serialize.dumps({"status": "live"}), mimetype=JSON)


@bp.get("/readyz")
def readyz() -> Response:
    app_state = state()
    if app_state.draining.is_set():
        raise GatewayError(
            "The gateway is draining before shutdown; send new calls elsewhere.",
            code="terminating",
            status=503,
        )
    return Response(serialize.dumps({"status": "ready"}), mimetype=JSON)


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    app_state = state()
    app_state.ops_access.require(request.headers.get("Authorization"), request.environ)
    body, content_type = app_state.metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    app_state = state()
    app_state.ops_access.require(request.headers.get("Authorization"), request.environ)
    if app_state.openapi is None:  # built once per app: the plugins do not change while it runs
        app_state.openapi = serialize.dumps(openapi.build(app_state.registry))
    return Response(app_state.openapi, mimetype=JSON)
