"""``GET /plugins`` and ``POST /validate``: the installed connectors and a dry run of a call.

Both need the system token, as ``POST /function`` does: a connector's schemas
and load errors are for the stack's operator, not for anyone who can reach it.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from . import catalog, serialize
from .auth import presented_token
from .endpoint import JSON, read_body
from .errors import Unauthorized
from .routes import state

bp = Blueprint("wrapgate_catalog", __name__)


def _authorise(body: object = None) -> None:
    token = presented_token(request.headers.get("Authorization"), body, request.args)
    if not state().check_token(token):
        raise Unauthorized()


@bp.get("/plugins")
def plugins() -> Response:
    """What ``wrapgate plugins --json`` prints, each connector with its spec."""
    _authorise()
    cache = current_app.extensions
    if "wrapgate.catalog" not in cache:
        # Built once per app: the plugins do not change while it runs.
        cache["wrapgate.catalog"] = serialize.dumps(catalog.catalog(state().registry))
    return Response(cache["wrapgate.catalog"], mimetype=JSON)


@bp.post("/validate")
def validate() -> Response:
    """The body of a ``POST /function`` call, checked but not run: 200 with
    ``{"valid", "function", "errors"}`` listing every problem."""
    header = request.headers.get("Authorization")
    limit = request.max_content_length
    body = None if header else read_body(request.environ, limit)
    _authorise(body)
    if body is None:
        body = read_body(request.environ, limit)
    return Response(serialize.dumps(catalog.validate(state().gateway, body)), mimetype=JSON)
