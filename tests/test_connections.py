"""A response's head and a small body leave in one send; nothing held is ever lost."""

import json
import socket

from support import TOKEN, next_response

from gateway import connections


class Recorder:
    """A socket that records its sends and the other calls made on it."""

    def __init__(self):
        self.sent: list[bytes] = []
        self.calls: list[str] = []

    def sendall(self, data, *args):
        self.sent.append(bytes(data))
        self.calls.append("send")

    def recv(self, size, *args):
        self.calls.append("recv")
        return b""

    def close(self):
        self.calls.append("close")

    def shutdown(self, how):
        self.calls.append("shutdown")


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n"


def connection():
    sock = Recorder()
    return sock, connections.Connection(sock, 10.0, 10.0, 1024)


def test_a_head_goes_out_with_its_small_body_in_one_send():
    sock, conn = connection()
    conn.sendall(HEAD)
    assert sock.sent == []
    conn.sendall(b'{"statusCode":200}')
    assert sock.sent == [HEAD + b'{"statusCode":200}']
    # The next response is coalesced too; a large body goes after its head, uncopied.
    big = b"x" * (connections.COALESCE_BYTES + 1)
    conn.sendall(HEAD)
    conn.sendall(big)
    assert sock.sent[1:] == [HEAD, big]


def test_a_held_head_is_sent_before_anything_else_happens_on_the_socket():
    for act in (
        lambda conn: conn.flush(),
        lambda conn: conn.recv(10),
        lambda conn: conn.close(),
        lambda conn: conn.shutdown(socket.SHUT_WR),
    ):
        sock, conn = connection()
        conn.sendall(HEAD)
        act(conn)
        assert sock.sent == [HEAD] and sock.calls[0] == "send"  # before the call itself
        conn.flush()
        assert sock.sent == [HEAD]  # once


def test_interim_responses_and_other_writes_are_not_held():
    sock, conn = connection()
    conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")  # head and body in one write
    conn.sendall(b"5\r\nhello\r\n")
    assert len(sock.sent) == 3


def _call(port, function, options):
    body = json.dumps({"diy": True, "function": function, "options": options}).encode()
    head = (
        f"POST /function HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    return head.encode(), body


def test_every_kind_of_response_arrives_whole_on_a_kept_connection(start_gateway):
    # Over real HTTP: a held head must never wait for a body that does not come (HEAD),
    # nor come after what follows it (100 Continue, a large body, an error page).
    server = start_gateway({"WRAPGATE_PLUGINS": "kit"}, workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"HEAD /livez HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        status, _, body, rest = next_response(sock, bodiless=True)
        assert status == b"HTTP/1.1 200 OK" and body == rest == b""

        head, body = _call(server.port, "kit.ping", {"a": 1})
        sock.sendall(head + b"\r\n" + body)
        status, _, body, rest = next_response(sock, rest)
        assert status == b"HTTP/1.1 200 OK" and json.loads(body) == {"statusCode": 200}

        # A large page, its body sent after a 100 Continue: the head goes first, then the body.
        head, body = _call(server.port, "kit.export", {"configuration": {"records": 20000}})
        sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
        status, _, _, rest = next_response(sock, rest)
        assert status == b"HTTP/1.1 100 Continue"
        sock.sendall(body)
        status, _, body, rest = next_response(sock, rest)
        assert status == b"HTTP/1.1 200 OK" and len(body) > connections.COALESCE_BYTES
        assert len(json.loads(body)["data"]) == 20000

        sock.sendall(f"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        status, _, body, rest = next_response(sock, rest)
        assert status == b"HTTP/1.1 404 NOT FOUND" and json.loads(body)["errors"][0]["code"] == "not_found"
        assert rest == b""
