"""What ops run: metrics across workers, OpenAPI, JSON logs, the drain on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from openapi_spec_validator import validate
from support import TOKEN, next_response, post, wait_until


def kit_call(url, function="kit.ping", options=None, **headers):
    body = {
        "diy": True,
        "function": function,
        "options": options or {"connection": {"_id": "conn-m", "unencrypted": {"mode": "ok"}}},
    }
    return post(url, body, headers=headers or None)


def sample(text, name, **labels):
    """The value of one sample in Prometheus text format."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(
                part.split("=", 1)
                for part in line[line.find("{") + 1 : line.find("}")].split(",")
                if "=" in part
            )
            found = {k: v.strip('"') for k, v in found.items()}
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_add_up_across_workers(start_gateway):
    server = start_gateway({"WRAPGATE_PLUGINS": "kit,broken"}, workers=2)
    options = {"connection": {"_id": "conn-m"}, "configuration": {"records": 1, "pid": True, "sleep": 0.05}}
    pids, calls = set(), 0
    with ThreadPoolExecutor(8) as pool:
        # Which worker accepts a connection is the kernel's choice: call until both have served.
        while len(pids) < 2 and calls < 400:
            batch = [pool.submit(kit_call, server.url, "kit.export", options) for _ in range(8)]
            pids |= {f.result().json()["pid"] for f in batch}
            calls += 8
    assert len(pids) == 2, "one worker took every connection"
    kit_call(server.url, "kit.nothing")
    # Whichever worker answers /metrics, it reports every worker's samples.
    for _ in range(6):
        text = requests.get(server.url + "/metrics", headers={"Connection": "close"}).text
        assert sample(text, "wrapgate_calls_total", connector="kit", function="export", outcome="ok") == calls
        assert (
            sample(
                text, "wrapgate_calls_total", connector="none", function="none", outcome="invalid_function"
            )
            == 1
        )
        assert sample(text, "wrapgate_http_requests_total", route="/function", status="200") == calls
        assert (
            sample(text, "wrapgate_call_duration_seconds_count", connector="kit", function="export") == calls
        )
        assert sample(text, "wrapgate_connection_in_flight", connection="conn-m") == 0
        assert sample(text, "wrapgate_plugin_loaded", plugin="kit") == 1
        assert sample(text, "wrapgate_plugin_loaded", plugin="broken") == 0


def test_metrics_count_waiting_and_rejected_calls(start_gateway, tmp_path):
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    server = start_gateway(
        {
            "WRAPGATE_PLUGINS": "probe",
            "WRAPGATE_TEST_PROBE_DIR": str(probe_dir),
            "WRAPGATE_LIMIT_WAIT": "0.5",
        },
        workers=2,
    )
    body = {
        "diy": True,
        "function": "probe.export",
        "options": {"connection": {"_id": "conn-w", "concurrencyLevel": 1}, "configuration": {"sleep": 2}},
    }
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(post, server.url, body) for _ in range(3)]
        time.sleep(0.2)
        text = requests.get(server.url + "/metrics").text
        assert sample(text, "wrapgate_connection_in_flight", connection="conn-w") == 1
        assert sample(text, "wrapgate_connection_waiting", connection="conn-w") == 2
        codes = sorted(f.result().status_code for f in futures)
    assert codes == [200, 429, 429]
    text = requests.get(server.url + "/metrics").text
    assert sample(text, "wrapgate_concurrency_rejections_total", connection="conn-w") == 2
    assert sample(text, "wrapgate_connection_waiting", connection="conn-w") == 0


def test_metrics_token(start_gateway):
    server = start_gateway(
        {"WRAPGATE_PLUGINS": "kit", "WRAPGATE_METRICS_TOKEN": "metrics-Secret-1"}, workers=1
    )
    refused = requests.get(server.url + "/metrics")
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "unauthorized"
    ok = requests.get(server.url + "/metrics", headers={"Authorization": "Bearer metrics-Secret-1"})
    assert ok.status_code == 200 and "wrapgate_plugin_loaded" in ok.text
    # The system token is not the metrics token.
    assert (
        requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    )


# -- OpenAPI ------------------------------------------------------------------------------------


def test_openapi_is_valid_and_describes_every_route(gateway):
    document = requests.get(gateway.url + "/openapi.json").json()
    validate(document)
    assert set(document["paths"]) == {
        "/function",
        "/",
        "/healthCheck",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }
    post_function = document["paths"]["/function"]["post"]
    assert post_function["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ExtensionOptions"
    )
    assert {"401", "413", "422", "429", "504"} <= set(post_function["responses"])
    schemas = document["components"]["schemas"]
    assert set(schemas["ExtensionOptions"]["properties"]) >= {"diy", "_connectorId", "function", "options"}
    # A connector's declared schemas are components too, generated from the same classes.
    assert set(schemas["strict.export.configuration"]["properties"]) == {"table", "pageSize"}
    assert schemas["strict.unencrypted"]["required"] == ["host"]


# -- logs -------------------------------------------------------------------------------------------


def log_lines(server):
    lines = []
    for line in server.log().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def test_one_json_line_per_request_with_the_calls_fields(gateway):
    options = {
        "_flowId": "flow-7",
        "_exportId": "exp-9",
        "connection": {
            "_id": "conn-log",
            "unencrypted": {"mode": "log"},
            "encrypted": {"password": "Planted-Secret-42"},
        },
    }
    r = post(
        gateway.url,
        {"diy": True, "function": "kit.ping", "options": options},
        headers={"traceid": "trace-abc"},
    )
    assert r.status_code == 200

    def access_line():
        return [
            e
            for e in log_lines(gateway)
            if e.get("logger") == "gateway.access" and e.get("traceid") == "trace-abc"
        ]

    (line,) = wait_until(access_line, 5, what="access log line")
    assert line["method"] == "POST" and line["path"] == "/function" and line["status"] == 200
    assert (
        line["function"] == "kit.ping" and line["connector"] == "kit" and line["connection_id"] == "conn-log"
    )
    assert line["flow_id"] == "flow-7" and line["export_id"] == "exp-9"
    assert line["response_bytes"] == len(r.content) and line["duration_ms"] >= 0
    assert len(line["request_id"]) == 16 and line["level"] == "info" and line["time"].endswith("+00:00")
    # The plugin's own record carries the same request id, and no secret.
    (plugin_line,) = [
        e
        for e in log_lines(gateway)
        if e.get("request_id") == line["request_id"] and e["logger"] == "gateway.plugin.kit"
    ]
    assert plugin_line["message"] == "plugin says the password is ********"
    assert "Planted-Secret-42" not in gateway.log()


def test_errors_are_logged_with_their_code(gateway):
    post(
        gateway.url,
        {"diy": True, "function": "kit.nothing", "options": {"a": 1}},
        headers={"traceid": "trace-err"},
    )
    line = wait_until(
        lambda: [
            e
            for e in log_lines(gateway)
            if e.get("traceid") == "trace-err" and e.get("logger") == "gateway.access"
        ],
        5,
        what="error line",
    )[0]
    assert line["status"] == 422 and line["error"] == "invalid_function"


def test_gunicorn_lines_are_json_too(gateway):
    boot = [e for e in log_lines(gateway) if e.get("logger") == "gunicorn.error"]
    assert any("Booting worker" in e["message"] for e in boot)


# -- graceful drain -------------------------------------------------------------------------------


def test_sigterm_drains_without_losing_or_cutting_a_call(start_gateway):
    server = start_gateway({"WRAPGATE_PLUGINS": "kit", "WRAPGATE_DRAIN_DELAY": "1.5"}, workers=2)
    options = {"connection": {"_id": "conn-drain"}, "configuration": {"sleep": 2.5, "records": 3000}}
    with ThreadPoolExecutor(6) as pool:
        calls = [pool.submit(kit_call, server.url, "kit.export", options) for _ in range(6)]
        time.sleep(0.5)  # all six are in the plugin now
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # During the drain delay the workers still answer, and say they are going.
        ready = requests.get(server.url + "/readyz", headers={"Connection": "close"})
        assert ready.status_code == 503 and ready.json()["errors"][0]["code"] == "terminating"
        assert requests.get(server.url + "/livez").status_code == 200
        results = [c.result(timeout=30) for c in calls]
    for r in results:
        assert r.status_code == 200
        page = r.json()  # the whole body arrived: it parses
        assert len(page["data"]) == 3000 and page["data"][-1] == {"id": "r2999", "n": 2999}
    assert server.proc.wait(30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/livez", timeout=2)


def test_idle_keep_alive_connections_do_not_hold_up_shutdown(start_gateway):
    server = start_gateway({"WRAPGATE_PLUGINS": "kit"}, workers=1)
    session = requests.Session()  # keeps its connection open after the call
    assert (
        session.post(
            server.url + "/function",
            json={"diy": True, "function": "kit.ping", "options": {"a": 1}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).status_code
        == 200
    )
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    # Not the keep-alive (620 s) nor the graceful timeout (310 s): the idle connection was closed.
    assert time.monotonic() - started < 10
    session.close()


def _livez_request(port):
    return f"GET /livez HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def test_keep_alive_connections_are_served_in_turn(start_gateway):
    # A gevent socket's recv does not yield when data is there: a keep-alive connection whose
    # next request is already buffered was served back to back while the worker's other
    # connections waited (issue 17). A client pipelining many requests makes that certain
    # (/livez, which never waits on anything, so only the worker's turn-taking yields):
    # another connection's one request must be answered before the whole queue is.
    server = start_gateway({"WRAPGATE_PLUGINS": "kit"}, workers=1)
    queued = 400
    request = _livez_request(server.port)
    with (
        socket.create_connection(("127.0.0.1", server.port)) as hog,
        socket.create_connection(("127.0.0.1", server.port)) as other,
    ):
        for sock in (hog, other):  # both connections served once, now waiting in keep-alive
            sock.settimeout(30)
            sock.sendall(request)
            assert next_response(sock)[0] == b"HTTP/1.1 200 OK"
        hog.sendall(request * queued)
        early = hog.recv(65536)  # the worker is at the queue now
        other.sendall(request)
        assert next_response(other)[0] == b"HTTP/1.1 200 OK"
        # What the hog has been sent by the time the other request was answered (loopback
        # delivers a send at once; 400 answers fit in its receive buffer).
        hog.setblocking(False)
        try:
            while chunk := hog.recv(1 << 20):
                early += chunk
        except BlockingIOError:
            pass
        answered_first = early.count(b"HTTP/1.1 200 OK")
        assert answered_first < queued, "the other connection waited for every queued request"
        # Every queued request is still answered, in order, on its connection.
        hog.settimeout(30)
        rest, answered = early, 0
        while answered < queued:
            status, _, _, rest = next_response(hog, rest)
            assert status == b"HTTP/1.1 200 OK"
            answered += 1


def test_worker_killed_in_a_call_is_replaced_and_the_gateway_serves_on(start_gateway):
    server = start_gateway({"WRAPGATE_PLUGINS": "kit"}, workers=1)
    (worker,) = server.workers()
    subprocess.run(["kill", "-9", str(worker)], check=True)
    wait_until(lambda: server.workers() and server.workers() != [worker], 20, what="a new worker")
    wait_until(lambda: _ok(server.url), 20, what="serving again")
    assert kit_call(server.url).json() == {"statusCode": 200}


def _ok(url):
    try:
        return requests.get(url + "/readyz", timeout=1).ok
    except requests.RequestException:  # not up yet: refused, or too busy booting to answer
        return False


def test_sigterm_as_a_worker_is_being_replaced_stops_the_server(start_gateway):
    # A worker's first ~100 ms (gevent's patching) run under the signal handlers the
    # fork copied from the master, which only queue a signal in the child's copy of the
    # master: a SIGTERM there was lost, and the master waited graceful_timeout (310 s)
    # for a worker that served on. Now it is held and acted on once the worker's own
    # handlers are in.
    server = start_gateway({"WRAPGATE_PLUGINS": "kit"}, workers=2)
    victim = server.workers()[0]
    booted = server.log().count("Booting worker with pid")
    os.kill(victim, signal.SIGKILL)
    # The replacement is forked when the master logs it: stop the server at once.
    wait_until(lambda: server.log().count("Booting worker with pid") > booted, 20, 0.002, "a replacement")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0  # not graceful_timeout's 310 s
