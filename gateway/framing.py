"""A request's body as gunicorn frames it: its limit, its framing errors, its close.

Flask reads ``wsgi.input`` through werkzeug's ``LimitedStream``, which has
three gaps under gunicorn, closed here by :class:`Framing`, a WSGI middleware
the worker (:mod:`gateway.worker`) puts around the app:

* **a chunked body over the limit**: with no ``Content-Length`` werkzeug stops
  reading at ``MAX_CONTENT_LENGTH`` bytes without an error, so an over-long body
  reached the JSON parser cut short (400 ``invalid_json``). :class:`Body` looks
  one byte past the limit and raises 413, the answer a ``Content-Length`` over
  the limit gets;
* **a malformed chunk** (a size that is not hex, a chunk not followed by CRLF,
  a bad trailer): gunicorn raises its own parse errors, which are neither
  ``OSError`` nor ``ValueError``, so werkzeug let them through and Flask
  answered 500. They become 400 ``bad_request``;
* **a body left unread** (a 401 on a wrong token, a 413 by ``Content-Length``,
  a body of a type that is never read, any of the errors above): gunicorn would
  keep the connection alive and read the rest of the body, without bound,
  before the next request (or, after a framing error, close it having said
  ``keep-alive``). The response says ``Connection: close`` instead, and the
  worker's lingering close (:class:`gateway.connections.Connection`) drains
  what the client is still sending so that it reads the answer, not a reset.

Everything here runs inside the request, so the errors are shaped by the app's
own handlers, logged and counted like any other answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

#: The longest piece of gunicorn's description of a framing error quoted to the client.
MAX_REASON = 200


class Body:
    """``wsgi.input`` that knows whether the request's body was read to its end.

    :param stream: gunicorn's body.
    :param length: the request's ``Content-Length``; None for a chunked body.
    :param limit: the most bytes a chunked body may have (``max_body_bytes``).
    """

    def __init__(self, stream: Any, length: int | None, limit: int):
        self._stream = stream
        self._length = length
        self._limit = limit
        self._read = 0
        self._ended = length == 0
        self.failed = False

    @property
    def consumed(self) -> bool:
        """Whether nothing of the body is left on the connection."""
        if self.failed:
            return False
        if self._length is not None:
            return self._read >= self._length
        return self._ended

    def read(self, size: int | None = -1) -> bytes:
        data = self._call(self._stream.read, size)
        self._count(data, size)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._call(self._stream.readline, size)
        self._count(data, 1)
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _count(self, data: bytes, size: int | None) -> None:
        if not data and size != 0:
            self._ended = True
            return
        self._read += len(data)
        if self._length is not None:
            return
        if size is not None and size < 0:
            self._ended = True  # gunicorn reads to the end of the body when given no size
        if self._read > self._limit:
            self.failed = True
            raise RequestEntityTooLarge()
        if self._read == self._limit:
            # werkzeug reads a chunked body up to the limit and no further: one more
            # byte tells a body of exactly the limit from a longer one.
            if self._call(self._stream.read, 1):
                self.failed = True
                raise RequestEntityTooLarge()
            self._ended = True

    def _call(self, read: Callable[[Any], bytes], size: Any) -> bytes:
        try:
            return read(size)
        except HTTPException:  # the connection's own (408, a body cut short): as they are
            self.failed = True
            raise
        except (ParseException, NoMoreData) as exc:
            self.failed = True
            reason = str(exc)[:MAX_REASON] or type(exc).__name__
            raise BadRequest(f"The request body's chunked framing is malformed: {reason}") from None


class Framing:
    """The WSGI app ``app`` with :class:`Body` as its ``wsgi.input`` (see the module)."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = Body(environ["wsgi.input"], _length(environ), self.limit)
        environ["wsgi.input"] = body

        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            if not body.consumed:
                _close_after(start_response)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _length(environ: dict) -> int | None:
    """The body's length: ``Content-Length``, 0 with no body at all, None when chunked."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0  # gunicorn refuses such a request before the app sees it


def _close_after(start_response: Callable[..., Any]) -> None:
    # gunicorn drops a Connection header set by the app (hop-by-hop): its response
    # object, whose method start_response is, closes through force_close().
    force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if force_close is not None:
        force_close()
