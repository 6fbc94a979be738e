"""Hostile clients (no token needed) and HTTP edge cases, against a real gunicorn.

Each test starts one worker with few connections (``WRAPGATE_WORKER_CONNECTIONS``)
and short header and body timeouts, so that a handful of raw sockets on
127.0.0.1 stands for thousands; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
from support import TOKEN, wait_until

pytestmark = pytest.mark.slow

SMALL = {
    "WRAPGATE_PLUGINS": "kit",
    "WRAPGATE_WORKER_CONNECTIONS": "40",
    "WRAPGATE_HEADER_TIMEOUT": "2",
    "WRAPGATE_BODY_TIMEOUT": "2",
}
PING = json.dumps({"diy": True, "function": "kit.ping", "options": {"connection": {"_id": "h"}}}).encode()


def raw(server, timeout=15.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


def read_response(sock: socket.socket, limit: float = 15.0) -> bytes:
    """Everything the server sends until it closes (or ``limit`` seconds pass)."""
    sock.settimeout(limit)
    chunks = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
        if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
            break
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def probe(server):
    began = time.monotonic()
    try:
        answer = requests.post(
            server.url + "/function",
            data=PING,
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/json",
                "Connection": "close",
            },
            timeout=10,
        )
    except requests.RequestException as exc:
        return None, time.monotonic() - began, str(exc)
    return answer, time.monotonic() - began, None


def test_held_connections_do_not_keep_a_well_behaved_client_out(start_gateway):
    server = start_gateway(SMALL, workers=1)
    held: list[socket.socket] = []
    trickling: list[socket.socket] = []
    stop = threading.Event()
    try:
        # 20 idle keep-alive connections, 20 that never finish their headers,
        # 20 that send headers and then a body a byte at a time.
        for _ in range(20):
            sock = raw(server)
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: gateway\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200")
            held.append(sock)
        for _ in range(20):
            sock = raw(server)
            sock.sendall(b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: app")
            held.append(sock)
        for _ in range(20):
            sock = raw(server)
            sock.sendall(
                b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\n{{".encode()
            )
            trickling.append(sock)

        def trickle():
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                for sock in trickling:
                    try:
                        sock.send(b" ")
                    except OSError:
                        pass
                stop.wait(0.5)

        threading.Thread(target=trickle, daemon=True).start()
        attack = time.monotonic()
        served_at = None
        for _ in range(20):
            answer, seconds, error = probe(server)
            assert error is None, f"a probe got no answer within 10 s: {error}"
            assert seconds < 10
            if answer.status_code == 200:
                served_at = time.monotonic() - attack
                break
            # Shed before the worker is full: a shaped 503 the client can retry on.
            assert answer.status_code == 503, answer.text
            assert answer.json()["errors"][0]["code"] == "overloaded"
            assert answer.headers["Retry-After"] == "1"
            time.sleep(1)
        assert served_at is not None and served_at < 15, "no probe was served while connections were held"
    finally:
        stop.set()
        for sock in held + trickling:
            sock.close()


def test_a_body_that_trickles_is_answered_408_and_closed(start_gateway):
    server = start_gateway(SMALL, workers=1)
    sock = raw(server)
    sock.sendall(
        b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{".encode()
    )
    began = time.monotonic()
    response = read_response(sock, 20)
    assert response.startswith(b"HTTP/1.1 408"), response[:200]
    assert b'"code":"request_timeout"' in response
    assert time.monotonic() - began < 2 + 8
    sock.close()


def test_partial_headers_are_cut_at_the_header_timeout(start_gateway):
    server = start_gateway(SMALL, workers=1)
    sock = raw(server)
    sock.sendall(b"POST /function HTTP/1.1\r\nHost: ga")
    began = time.monotonic()
    assert read_response(sock, 20) == b""  # closed, not held for the keep-alive period (620 s)
    assert time.monotonic() - began < 2 + 8
    sock.close()


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NOT-HTTP\r\n\r\n", 400),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: g\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: g\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"POST /function HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /function HTTP/1.1\r\nHost: g\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n1", 417),
    ],
)
def test_requests_gunicorn_cannot_parse_are_answered_in_the_json_shape(start_gateway, request_bytes, status):
    server = start_gateway(SMALL, workers=1)
    sock = raw(server)
    sock.sendall(request_bytes)
    response = read_response(sock)
    sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), response[:300]
    assert b"Content-Type: application/json" in head
    error = json.loads(body)["errors"][0]
    assert set(error) == {"code", "message"} and error["code"]


def test_a_client_that_writes_its_whole_body_first_reads_its_413(start_gateway):
    server = start_gateway(dict(SMALL, WRAPGATE_MAX_BODY_BYTES="1000000"), workers=1)
    body = b"[" + b"1," * 1_500_000 + b"1]"  # 3 MB, three times the limit
    sock = raw(server, timeout=30)
    sock.sendall(
        b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    response = read_response(sock, 30)
    assert response.startswith(b"HTTP/1.1 413"), response[:300]
    assert b"request_entity_too_large" in response or b"too_large" in response
    # The body was never read: the connection closes (lingering) rather than read 3 MB more.
    assert b"Connection: close" in response
    assert closed_by_server(sock)
    sock.close()


def test_a_body_shorter_than_its_length_is_refused_not_processed(start_gateway):
    server = start_gateway(SMALL, workers=1)
    sock = raw(server)
    sock.sendall(
        b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 500\r\n\r\n".encode()
        + PING
    )
    sock.shutdown(socket.SHUT_WR)  # half-close: the rest of the body never comes
    response = read_response(sock)
    sock.close()
    assert response.startswith(b"HTTP/1.1 400"), response[:300]
    assert b'"code":"bad_request"' in response


def test_a_huge_chunk_size_does_not_hang_the_connection(start_gateway):
    server = start_gateway(SMALL, workers=1)
    sock = raw(server)
    sock.sendall(
        b"POST /function HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n"  # a body of another type is never read
        + f"Authorization: Bearer {TOKEN}\r\n\r\nffffffffff\r\n{{}}".encode()
    )
    began = time.monotonic()
    response = read_response(sock, 20)
    sock.close()
    assert response.startswith(b"HTTP/1.1 408"), response[:300]
    assert time.monotonic() - began < 2 + 8


# -- Request bodies gunicorn frames (gateway/framing.py) ---------------------------------------


def chunked(body: bytes, size: int = 500) -> bytes:
    """``body`` in chunks of ``size`` bytes, with its last chunk."""
    parts = [
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


CHUNKED_HEAD = (
    b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
    + f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ends the connection after its answer (no further byte, EOF)."""
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def answer(response: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_a_chunked_body_over_the_limit_is_413_and_the_connection_closed(start_gateway):
    server = start_gateway(dict(SMALL, WRAPGATE_MAX_BODY_BYTES="1000"), workers=1)
    body = b"[" + b"1," * 100_000 + b"1]"  # 200 kB of valid JSON, sent whole before reading
    sock = raw(server, timeout=30)
    sock.sendall(CHUNKED_HEAD + chunked(body))
    status, headers, error = answer(read_response(sock, 30))
    assert status == 413  # not a body cut at the limit and parsed (400 invalid_json)
    assert error == {
        "errors": [
            {"code": "request_entity_too_large", "message": "Request body exceeds the limit of 1000 bytes."}
        ]
    }
    assert headers["Connection"] == "close"
    assert closed_by_server(sock)
    sock.close()


def test_a_chunked_body_of_exactly_the_limit_is_read_and_the_connection_kept(start_gateway):
    server = start_gateway(dict(SMALL, WRAPGATE_MAX_BODY_BYTES="1000"), workers=1)
    body = PING + b" " * (1000 - len(PING))
    sock = raw(server)
    sock.sendall(CHUNKED_HEAD + chunked(body) + CHUNKED_HEAD + chunked(PING))
    first = read_response(sock)
    assert first.startswith(b"HTTP/1.1 200"), first[:300]
    assert b"Connection: keep-alive" in first
    second = read_response(sock)  # the next request on the same connection
    assert second.startswith(b"HTTP/1.1 200"), second[:300]
    sock.close()


@pytest.mark.parametrize(
    "body, half_close",
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", False),  # a size that is not hex
        (b"2\r\n{}XX0\r\n\r\n", False),  # a chunk not followed by CRLF
        (b"2\r\n{}\r\n0\r\nX-Trailer\r\n\r\n", False),  # a trailer that is no header
        (b'10\r\n{"a"', True),  # the client ends its side mid-chunk
        (b"2\r\n{}\r\n", True),  # ... or before the last chunk
    ],
    ids=["bad-size", "no-crlf", "bad-trailer", "eof-mid-chunk", "eof-before-last-chunk"],
)
def test_a_malformed_or_truncated_chunk_is_400_and_the_connection_closed(start_gateway, body, half_close):
    server = start_gateway(SMALL, workers=1)
    sock = raw(server)
    sock.sendall(CHUNKED_HEAD + body)
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    status, headers, error = answer(read_response(sock))
    assert status == 400, error  # not 500 internal_error
    assert error["errors"][0]["code"] == "bad_request"
    assert headers["Connection"] == "close"
    assert closed_by_server(sock)
    sock.close()
    assert "internal_error" not in server.log()


def test_a_response_sent_before_the_body_is_read_closes_the_connection(start_gateway):
    server = start_gateway(SMALL, workers=1)
    bad = (
        b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer wrong\r\nContent-Length: {len(PING)}\r\n\r\n".encode()
        + PING
    )
    good = (
        b"POST /function HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(PING)}\r\n\r\n".encode()
        + PING
    )
    # A keep-alive client that sends its next request at once: the 401 (decided on
    # the header, the body never read) closes the connection; nothing after it is served.
    sock = raw(server)
    sock.sendall(bad + good)
    status, headers, error = answer(read_response(sock))
    assert status == 401 and error["errors"][0]["code"] == "unauthorized"
    assert headers["Connection"] == "close"
    assert closed_by_server(sock)
    sock.close()
    # A client that reads each answer first (a pooled HTTP client) reconnects and is served.
    with requests.Session() as session:
        refused = session.post(
            server.url + "/function",
            data=PING,
            headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"},
            timeout=10,
        )
        assert refused.status_code == 401 and refused.headers["Connection"] == "close"
        served = session.post(
            server.url + "/function",
            data=PING,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert served.status_code == 200, served.text
        assert served.headers["Connection"] == "keep-alive"  # a body read to its end keeps it


def test_new_connections_past_the_shed_mark_get_503_overloaded(start_gateway):
    # 10 connections a worker: the tenth and later are answered 503 at once (gateway.worker.SHED_SHARE).
    server = start_gateway(
        dict(SMALL, WRAPGATE_WORKER_CONNECTIONS="10", WRAPGATE_HEADER_TIMEOUT="30"), workers=1
    )
    held = []
    try:
        for _ in range(9):  # mid-headers: not closed as idle keep-alive connections are
            sock = raw(server)
            sock.sendall(b"POST /function HTTP/1.1\r\nHost: ga")
            held.append(sock)
        shed = None
        for _ in range(20):  # the worker accepts the held ones in its own time
            sock = raw(server)
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: gateway\r\n\r\n")
            response = read_response(sock)
            sock.close()
            if response.startswith(b"HTTP/1.1 503"):
                shed = response
                break
            time.sleep(0.2)
        assert shed is not None, "no connection was shed with 9 of 10 held"
        status, headers, error = answer(shed)
        assert error["errors"][0]["code"] == "overloaded"
        assert headers["Retry-After"] == "1" and headers["Connection"] == "close"
        assert "answering a new one 503 overloaded" in server.log()
    finally:
        for sock in held:
            sock.close()
    # Once the held connections go, the worker serves again.
    wait_until(lambda: _served(server), 15, 0.2, "a served probe")


def _served(server) -> bool:
    response = probe(server)[0]
    return response is not None and response.status_code == 200
