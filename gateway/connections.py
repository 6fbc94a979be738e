"""One client connection of a worker: its timeouts, its close, its error pages.

gunicorn's gevent worker gives a connection one timer, the keep-alive period
(minutes, above load balancers' idle timeouts), for everything before a
request's headers are complete, and no timer at all while a body is read. A
client that opens connections and sends headers or a body a byte at a time
would hold them for that long, and the worker serves no one once they fill
it. :class:`Connection` wraps the client socket and keeps, after nginx's
``client_header_timeout``/``client_body_timeout``:

* ``header_timeout``: a request's headers must be complete this long after
  its first byte (a new connection's first request: after it was accepted);
* ``body_timeout``: the longest pause between two reads of a body, and the
  body as a whole may take ``body_timeout`` plus one second per
  :data:`MIN_BODY_RATE` bytes received (a trickle is cut, a large upload is not);
* an idle keep-alive wait of ``keepalive`` seconds, which the worker cuts
  short when it is busy (:mod:`gateway.worker`).

A body that times out answers 408 ``request_timeout``, one cut short (the
client half-closed before its ``Content-Length`` or last chunk) 400
``bad_request``; either closes the connection. Closing lingers (gunicorn's ``close_graceful``: write side shut,
unread request bytes drained for a bounded time) so that a client that writes
its whole body before reading still reads a 413 instead of a reset.
:func:`json_error_page` turns gunicorn's own HTML error pages (400, 414,
417, 431, 501...) into the gateway's JSON error shape.
"""

from __future__ import annotations

import re
import time
from typing import Any

import gevent
from gunicorn import util
from werkzeug.exceptions import BadRequest, RequestTimeout

from . import serialize

#: Bytes a second a body must average once its first ``body_timeout`` seconds are over.
MIN_BODY_RATE = 16 * 1024
#: Longest a closing connection drains unread request bytes before it is closed anyway.
LINGER_SECONDS = 10.0
#: A response head is sent in one piece with a body up to this size (see Connection.sendall).
COALESCE_BYTES = 64 * 1024

IDLE, HEADERS, BODY, CLOSED = "idle", "headers", "body", "closed"


class Connection:
    """A client socket that keeps its phase's timeout. Everything else is the socket's."""

    _head = b""  # a response head held for the body after it (sendall)

    def __init__(self, sock: Any, header_timeout: float, body_timeout: float, linger_bytes: int):
        self._sock = sock
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.linger_bytes = linger_bytes
        self.phase = IDLE
        self.served = 0  # requests whose headers were read
        self.timer: gevent.Timeout | None = None  # the wait for headers, while one runs
        self._body_started = 0.0
        self._body_bytes = 0

    def __getattr__(self, name: str) -> Any:
        # Any other use of the socket (send, shutdown, setblocking...) comes after the held head.
        if self._head:
            self.flush()
        return getattr(self._sock, name)

    # -- writes --------------------------------------------------------------------

    def sendall(self, data: Any, *args: Any) -> None:
        """gunicorn writes a response's head and its body in two sends: two syscalls, and
        two segments for the client's delayed ACK to meet. A final response's head is held
        and goes out with the body after it when that is at most :data:`COALESCE_BYTES`;
        anything else on the socket (:meth:`flush`, a read, a close) sends it first."""
        head = self._head
        if head:
            self._head = b""
            if len(data) <= COALESCE_BYTES:
                return self._sock.sendall(head + bytes(data), *args)
            self._sock.sendall(head)
        elif not args and _is_final_head(data):
            self._head = bytes(data)
            return None
        return self._sock.sendall(data, *args)

    def flush(self) -> None:
        """Send a held response head (:meth:`sendall`)."""
        head, self._head = self._head, b""
        if head:
            self._sock.sendall(head)

    # -- phases, moved by the worker's wait for the next request ---------------

    def waiting(self, timer: gevent.Timeout) -> None:
        """The wait for a request's headers starts (``timer`` ends it)."""
        self.timer = timer
        if self.phase != CLOSED:
            self.phase = IDLE

    def wait_ended(self) -> None:
        """The wait ended without headers (its timer, a drain, a bad request)."""
        self.timer = None

    def headers_read(self) -> None:
        self.timer = None
        if self.phase == CLOSED:
            return
        self.served += 1
        self.phase, self._body_started, self._body_bytes = BODY, time.monotonic(), 0

    # -- reads -------------------------------------------------------------------

    def recv(self, size: int, *args: Any) -> bytes:
        if self._head:
            self.flush()
        if self.phase == CLOSED:
            return b""  # a timed-out body: the parser sees the end of the stream
        if self.phase != BODY:
            data = self._sock.recv(size, *args)
            if data and self.phase == IDLE and self.timer is not None:
                # The first byte of a request: its headers now have header_timeout.
                self.phase = HEADERS
                self.timer.cancel()
                self.timer.seconds = self.header_timeout
                self.timer.start()
            return data
        allowed = self._body_started + self.body_timeout + self._body_bytes / MIN_BODY_RATE
        wait = min(self.body_timeout, allowed - time.monotonic())
        data = None
        if wait > 0:
            with gevent.Timeout(wait, False):
                data = self._sock.recv(size, *args)
        if data is None:
            self.phase = CLOSED
            raise RequestTimeout(
                f"The request body did not arrive in time (a pause over {self.body_timeout:g} s, "
                f"or under {MIN_BODY_RATE} bytes a second)."
            )
        if not data:
            # Only a body still owed is read here: the client stopped sending before its end.
            self.phase = CLOSED
            raise BadRequest("The request body ended before its declared length (or its last chunk).")
        self._body_bytes += len(data)
        return data

    def close(self) -> None:
        if self._head:
            try:
                self.flush()
            except OSError:
                pass  # the client is gone: the close below is all that is left to do
        if self.phase in (BODY, CLOSED):
            # A response was written: unread request bytes must not turn into a reset.
            util.close_graceful(self._sock, timeout=LINGER_SECONDS, max_drain=self.linger_bytes)
        else:
            self._sock.close()


_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ([^\r\n]*)")


def _is_final_head(data: Any) -> bool:
    """Whether ``data`` is a whole response head of a final (not 1xx) status."""
    return (
        isinstance(data, bytes)
        and data.startswith(b"HTTP/1.")
        and data.endswith(b"\r\n\r\n")
        and data[9:10] != b"1"
    )


class _Capture:
    """Stands in for the client while gunicorn writes an HTML error page."""

    def __init__(self, sock: Any):
        self._sock = sock
        self.written = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, data: bytes) -> None:
        self.written += bytes(data)

    def send(self, data: bytes) -> int:
        self.written += bytes(data)
        return len(data)


def capture(sock: Any) -> _Capture:
    return _Capture(sock)


def json_error_page(written: bytes, exc: BaseException) -> bytes | None:
    """gunicorn's HTML error response ``written``, as the gateway's JSON error shape."""
    match = _STATUS_LINE.match(written)
    if match is None:
        return None
    status, reason = int(match.group(1)), match.group(2).decode("latin-1")
    if status >= 500 and status != 501:
        code, message = "internal_error", "The gateway failed to read the request; its log has the reason."
    else:
        code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "bad_request"
        message = str(exc) or reason
    body = serialize.dumps({"errors": [{"code": code, "message": message}]})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def overloaded_page(retry_after: int) -> bytes:
    """The 503 a worker answers a connection it has no room for."""
    body = serialize.dumps(
        {
            "errors": [
                {
                    "code": "overloaded",
                    "message": "This gateway worker has no room for the connection; retry shortly.",
                }
            ]
        }
    )
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Retry-After: {retry_after}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body
