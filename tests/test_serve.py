"""``wrapgate serve`` is the production command: HTTPS from a connector works under
both, and ``--reload`` restarts workers on a code change.

The HTTPS API is a local server on 127.0.0.1 with a self-signed certificate that
the test makes with the ``openssl`` command; the gateway trusts it through
``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from support import ROOT, TOKEN, GatewayProcess, free_port, wait_until

pytestmark = pytest.mark.slow

WRAPGATE = shutil.which("wrapgate", path=str(Path(sys.executable).parent)) or "wrapgate"
ITEMS = [{"id": 1, "name": "first"}, {"id": 2, "name": "second"}]


@pytest.fixture(scope="module")
def https_api(tmp_path_factory):
    """An HTTPS JSON API on 127.0.0.1: ``GET /items`` answers two records."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    class Items(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(ITEMS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Items)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()  # the listening TLS socket, else a ResourceWarning (an error here)


def export_over_https(url, api):
    base, _ = api
    body = {
        "diy": True,
        "type": "wrapper",
        "function": "rest.export",
        "options": {
            "connection": {"_id": "c-tls", "unencrypted": {"baseURI": base, "retries": 0}},
            "configuration": {"path": "/items", "recordsPath": "@"},
        },
    }
    return requests.post(
        url + "/function", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRAPGATE_")}
    env.update(WRAPGATE_SYSTEM_TOKEN=TOKEN, **extra)
    return env


class Serve:
    """``wrapgate serve`` in a subprocess on a free port."""

    def __init__(self, log_dir: Path, env: dict, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"serve-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [WRAPGATE, "serve", "--port", str(self.port), "--workers", "1", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._up, 60, 0.1, "wrapgate serve")

    def _up(self):
        assert self.proc.poll() is None, self.log()
        try:
            return requests.get(self.url + "/livez", timeout=1).ok
        except requests.RequestException:
            return False

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)
        finally:
            self._log.close()


def test_https_calls_work_under_wrapgate_serve(https_api, tmp_path):
    serve = Serve(tmp_path, base_env(WRAPGATE_PLUGINS="rest", REQUESTS_CA_BUNDLE=str(https_api[1])))
    try:
        answer = export_over_https(serve.url, https_api)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"] == ITEMS
    finally:
        assert serve.stop() == 0
    assert "MonkeyPatchWarning" not in serve.log()


def test_https_calls_work_under_the_production_command(https_api, tmp_path):
    env = {"WRAPGATE_PLUGINS": "rest", "REQUESTS_CA_BUNDLE": str(https_api[1])}
    with GatewayProcess(
        tmp_path, env=env, workers=1, config=str(ROOT / "config" / "gunicorn.conf.py")
    ) as server:
        answer = export_over_https(server.url, https_api)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"] == ITEMS
        assert "MonkeyPatchWarning" not in server.log()


def test_an_untrusted_certificate_is_refused_not_crashed(https_api, tmp_path):
    serve = Serve(tmp_path, base_env(WRAPGATE_PLUGINS="rest"))
    try:
        answer = export_over_https(serve.url, https_api)
        # The connector's answer for a connection that does not work, never a RecursionError.
        assert answer.status_code == 200, answer.text
        assert answer.json()["connectionOffline"] is True
        assert "RecursionError" not in answer.text and "CERTIFICATE_VERIFY_FAILED" in answer.text
    finally:
        serve.stop()


RELOADABLE = """
from gateway import hookimpl

@hookimpl
def wrapgate_ping():
    return {"statusCode": 200, "version": VERSION}

VERSION = %d
"""


def test_serve_reload_restarts_workers_when_a_plugin_changes(tmp_path):
    site = tmp_path / "site"
    (site / "wrapgate_reloadable-1.0.dist-info").mkdir(parents=True)
    (site / "wrapgate_reloadable-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wrapgate-reloadable\nVersion: 1.0\n"
    )
    (site / "wrapgate_reloadable-1.0.dist-info" / "entry_points.txt").write_text(
        "[wrapgate]\nreloadable = reloadable_plugin\n"
    )
    module = site / "reloadable_plugin.py"
    module.write_text(RELOADABLE % 1)
    env = base_env(PYTHONPATH=str(site), WRAPGATE_PLUGINS="reloadable")
    serve = Serve(tmp_path, env, "--reload")
    body = {"diy": True, "function": "reloadable.ping", "options": {}}

    def version():
        try:
            answer = requests.post(
                serve.url + "/function", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            )
            return answer.json().get("version")
        except (requests.RequestException, ValueError):
            return None

    try:
        assert wait_until(version, 30, 0.2, "first answer") == 1
        module.write_text(RELOADABLE % 2)
        assert wait_until(lambda: version() == 2, 30, 0.2, "the reloaded plugin")
    finally:
        assert serve.stop() == 0
