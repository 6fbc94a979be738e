"""``POST /function`` served as plain WSGI, in front of Flask.

Every integrator.io call comes through this one route, so it skips what Flask
adds per request (the request and app contexts, URL routing, the ``Response``
object, the before/after hooks): about a sixth of a ping's CPU, measured with
py-spy under the shipped gunicorn configuration. What the route does is kept
exactly: the token checked before a large body is parsed, the body read under
the same limit by werkzeug's own input stream, the errors shaped by
:func:`gateway.answers.for_error` (which Flask's handlers use too), the request
id, log context, HTTP metric and access line of :mod:`gateway.access`, and
werkzeug's status lines.

:class:`FunctionEndpoint` is installed as the Flask app's ``wsgi_app``
(``create_app``), so test clients and every server reach it. Any other path or
method goes on to Flask, which still routes ``POST /function`` to the same
:func:`serve` (a path Flask normalises, ``//function`` say) and answers
``OPTIONS`` and a 405 for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.http import parse_options_header
from werkzeug.wrappers import Request
from werkzeug.wsgi import get_input_stream

from . import access, answers, serialize
from .auth import presented_token
from .calls import Answer
from .errors import GatewayError, Unauthorized

JSON = "application/json"
_NO_QUERY: Mapping[str, str] = {}
# Headers the endpoint sets from the body; a plugin's own give way.
_OWN_HEADERS = frozenset(("content-type", "content-length"))


def serve(state: Any, environ: dict[str, Any]) -> Answer:
    """One ``POST /function`` request of ``environ`` for the app whose
    :class:`gateway.app.State` is ``state``.

    :raises GatewayError: the token is missing or wrong (401), the body is no JSON (400).
    :raises werkzeug.exceptions.HTTPException: the body is over the limit (413) or its
        framing is broken (400, 408).
    """
    header = environ.get("HTTP_AUTHORIZATION")
    body = None
    if header:
        # The header alone decides: a wrong token is refused before a large body is parsed.
        token = presented_token(header, None, _NO_QUERY)
    else:
        body = read_body(environ, state.settings.max_body_bytes)
        query = Request(environ).args if environ.get("QUERY_STRING") else _NO_QUERY
        token = presented_token(None, body, query)
    if not state.check_token(token, environ):
        raise Unauthorized()
    if body is None:
        body = read_body(environ, state.settings.max_body_bytes)
    return state.gateway.call(
        body, request_id=environ["wrapgate.request_id"], trace_id=environ.get("HTTP_TRACEID")
    )


def read_body(environ: dict[str, Any], max_content_length: int | None) -> Any:
    """The request's JSON body, ``{}`` for an empty one or one of another type.

    As the reference's JSON parser: a body of another type is not read at all (no
    token is taken from it, no field of it is seen). The body is read as werkzeug's
    ``Request.get_data`` reads it, through its input stream and its limit.

    :raises GatewayError: ``invalid_json`` (400).
    :raises werkzeug.exceptions.RequestEntityTooLarge: over ``max_content_length``.
    """
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type != JSON and parse_options_header(content_type)[0].lower() != JSON:
        return {}
    data = get_input_stream(environ, max_content_length=max_content_length).read()
    if not data.strip():
        return {}
    try:
        return serialize.loads(data)
    except ValueError as exc:
        raise GatewayError(
            f"Request body is not valid JSON: {exc}", code="invalid_json", status=400
        ) from None


class FunctionEndpoint:
    """WSGI middleware: ``POST /function`` answered here, everything else by ``app``.

    :param app: the Flask app's own ``wsgi_app``.
    :param state: the app's :class:`gateway.app.State`.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], state: Any):
        self.app = app
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/function" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        state = self.state
        request_id = access.begin(environ, environ.get("HTTP_TRACEID"))
        served = answers.Served("POST", "/function", request_id, state.settings.max_body_bytes)
        try:
            answer = serve(state, environ)
            status, headers = _wire(answer)
        except Exception as exc:  # noqa: BLE001 - every failure is answered, as Flask's handlers would
            answer = answers.for_error(exc, served)
            status, headers = _wire(answer)
        body = answer.body
        headers.append(("Content-Type", JSON))
        headers.append(("Content-Length", str(len(body))))
        access.done(state.metrics, environ, "POST", "/function", "/function", status, len(body))
        start_response(answers.status_line(status), headers)
        return [body]


def _wire(answer: Answer) -> tuple[int, list[tuple[str, str]]]:
    """The status and headers of ``answer`` as werkzeug's ``Response`` would send them:
    a plugin's error may carry a status as text (``"418"``) and header values that are
    no text (``Retry-After: 5``); its own ``Content-Type``/``Content-Length`` give way to
    the body's.

    :raises ValueError: a status that is no number, a header with a line break in it
        (answered as an unexpected failure, 500, as werkzeug refuses it).
    """
    status = int(answer.status)
    headers = []
    for name, value in answer.headers.items():
        name, value = str(name), str(value)
        if name.lower() in _OWN_HEADERS:
            continue
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"header {name!r} has a line break in it")
        headers.append((name, value))
    return status, headers
