"""Failures as HTTP answers: the one JSON error shape, whichever path served the request.

Flask's error handlers (:mod:`gateway.app`) and the ``POST /function`` endpoint
(:mod:`gateway.endpoint`, which runs without Flask's request machinery) both
answer through :func:`for_error`, so a 413, a 401 or an unexpected failure reads
the same on every route.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from . import logs, serialize
from .calls import Answer
from .errors import GatewayError, shape

# The logger an unexpected failure is reported on (as before the endpoint had its own path).
log = logging.getLogger("gateway.app")

_STATUS_LINES: dict[int, str] = {}


def status_line(status: int) -> str:
    """``"422 UNPROCESSABLE ENTITY"``: the status line werkzeug's ``Response`` writes."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"{status} {HTTP_STATUS_CODES.get(status, 'unknown').upper()}"
    return line


@dataclass(frozen=True)
class Served:
    """What an error answer says about the request it answers."""

    method: str
    path: str
    request_id: str
    #: the body limit a 413 names
    max_content_length: int | None


def for_error(exc: BaseException, request: Served) -> Answer:
    """The answer for ``exc`` raised while serving ``request``: werkzeug's HTTP
    errors (400, 404, 405, 413...) and the gateway's own errors shaped, anything
    else a 500 ``internal_error`` whose traceback goes to the log."""
    if isinstance(exc, HTTPException):
        return _http_error(exc, request)
    if isinstance(exc, GatewayError):
        return _json(exc)
    return _unexpected(exc, request)


def _json(exc: BaseException) -> Answer:
    status, body, headers = shape(exc)
    logs.bind(error=body["errors"][0]["code"])
    return Answer(status, serialize.dumps(body), headers)


def _code(exc: HTTPException) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def _http_error(exc: HTTPException, request: Served) -> Answer:
    if exc.code is None or exc.code >= 500:
        return _unexpected(exc, request)
    headers = {k: _sorted_allow(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"}
    message = exc.description or exc.name
    if exc.code == 413:
        message = f"Request body exceeds the limit of {request.max_content_length} bytes."
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


def _unexpected(exc: BaseException, request: Served) -> Answer:
    logs.bind(error="internal_error")
    log.error("unexpected failure serving %s %s", request.method, request.path, exc_info=exc)
    message = f"The gateway failed unexpectedly; its log has request {request.request_id}."
    return _json(GatewayError(message, code="internal_error", status=500))
