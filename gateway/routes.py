"""HTTP routes: ``POST /function`` and the health probes.

The route only speaks HTTP: it checks the system token, parses the body and
hands it to :meth:`gateway.calls.Gateway.call`, which owns the call itself.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, current_app, request

from . import openapi, serialize
from .auth import presented_token
from .errors import GatewayError, Unauthorized

bp = Blueprint("wrapgate", __name__)

_SUCCESS = serialize.dumps({"success": True})
JSON = "application/json"


def state():
    """The app's :class:`gateway.app.State` (plugins, settings, limiter...)."""
    return current_app.extensions["wrapgate"]


def new_request_id() -> str:
    return secrets.token_hex(8)


@bp.post("/function")
def function() -> Response:
    app_state = state()
    header = request.headers.get("Authorization")
    body = None
    if header:
        # The header alone decides: a wrong token is refused before a large body is parsed.
        token = presented_token(header, None, request.args)
    else:
        body = _parse_body()
        token = presented_token(None, body, request.args)
    if not app_state.check_token(token, request.environ):
        raise Unauthorized()
    if body is None:
        body = _parse_body()
    answer = app_state.gateway.call(
        body, request_id=request.environ["wrapgate.request_id"], trace_id=request.headers.get("traceid")
    )
    return Response(answer.body, status=answer.status, headers=dict(answer.headers), mimetype=JSON)


def _parse_body():
    if request.mimetype != JSON:
        # As the reference's JSON parser: a body of another type is not read at
        # all (no token is taken from it, no field of it is seen).
        return {}
    data = request.get_data(cache=False)  # MAX_CONTENT_LENGTH applies: 413 past it
    if not data.strip():
        return {}
    try:
        return serialize.loads(data)
    except ValueError as exc:
        raise GatewayError(
            f"Request body is not valid JSON: {exc}", code="invalid_json", status=400
        ) from None


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
