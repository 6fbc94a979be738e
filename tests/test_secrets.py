"""No secret leaves the gateway, by any path; nothing is exposed an operator did not choose.

A real gunicorn (2 gevent workers) serves the ``leaky`` test connector, which
writes every secret of a call in every form (raw, JSON-escaped, URL-encoded,
base64, split in pieces) through every path a plugin has: results' error
structures, exceptions, log calls with extras, background threads, greenlets,
prints, stderr, warnings, an exception that escapes to gunicorn. Then every
byte the gateway emitted (response bodies and headers, every line the master
and workers wrote to stdout and stderr, ``/metrics``, ``/openapi.json``) is
searched for every form of every secret: zero hits.
"""

import base64
import json
import urllib.parse

import pytest
import requests
from support import TOKEN, post, wait_until

PASSWORD = 'Pl4nted-"Pass/wörd+1'
API_KEY = "Pl4ntedApiKey-0123456789"
BEARER = "Pl4nted-Bearer-Token-xyz"
IMPORT_KEY = "Pl4nted-Import-Env-Key"
# Short values and numbers under `encrypted` are settings, not secrets: never masked.
ENCRYPTED = {"password": PASSWORD, "apiKey": API_KEY, "region": "eu", "ssl": "true", "port": 2}
SECRETS = (PASSWORD, API_KEY, BEARER, TOKEN)


def forms_of(secret: str) -> set[str]:
    """What to search for, derived here independently of gateway.scrub: the forms
    themselves, base64 cores at each byte offset, and each half (a secret written in
    pieces must not come out in pieces)."""
    found = {
        secret,
        urllib.parse.quote(secret),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret[: len(secret) // 2],
        secret[len(secret) // 2 :],
    }
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            # Drop the first and last 4 characters: they carry bits of the neighbours.
            found.add(encode(b"\0" * offset + secret.encode()).decode()[4:-4])
    return found


FORMS = {form: secret for secret in SECRETS for form in forms_of(secret)}


def hits(text: str) -> list[str]:
    return sorted({FORMS[form] for form in FORMS if form in text})


def options(leak: str | None = None, **extra):
    connection = {"_id": "conn-leaky", "encrypted": ENCRYPTED, "unencrypted": {"leak": leak}}
    return {"connection": connection, "bearerToken": BEARER, **extra}


@pytest.fixture(scope="module")
def leaky(testkit_site, tmp_path_factory):
    from support import Gunicorn

    server = Gunicorn(
        testkit_site,
        tmp_path_factory.mktemp("leaky"),
        env={
            "WRAPGATE_PLUGINS": "leaky,leakybroken",
            "WRAPGATE_TEST_IMPORT_KEY": IMPORT_KEY,
            "WRAPGATE_LOG_LEVEL": "DEBUG",
        },
    )
    server.start()
    yield server
    server.stop()


def _emitted(response: requests.Response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return headers + "\n" + response.content.decode("utf-8", "replace")


def test_no_secret_leaves_by_any_path(leaky):
    emitted: list[str] = []

    def call(function, opts, **kwargs):
        response = leaky.call(function, opts, **kwargs)
        emitted.append(_emitted(response))
        return response

    # Responses: error structures of every shape, exceptions, codes.
    result = call("leaky.ping", options("result"))
    assert result.status_code == 200 and result.json()["statusCode"] == 401
    assert "********" in result.text
    for leak in ("raise", "coded"):
        failed = call("leaky.ping", options(leak))
        assert failed.status_code == 422 and "********" in failed.text, failed.text
    export = call("leaky.export", options())
    assert export.status_code == 200 and export.json()["data"] == [{"n": 1}]
    assert "********" in json.dumps(export.json()["errors"])
    imported = call("leaky.import", options(postMapData=[{"i": i} for i in range(12)]))
    assert imported.status_code == 200 and len(imported.json()) == 12
    assert all("********" in json.dumps(entry) for entry in imported.json())

    # Out of band: logs with extras, prints, stderr, warnings, split writes, threads, greenlets.
    for leak in ("output", "background"):
        assert call("leaky.ping", options(leak)).json() == {"statusCode": 200}

    # A BaseException meant to escape the app to gunicorn (answered as a shaped 422 since
    # the faults work), the token in the query string.
    escaped = requests.post(
        f"{leaky.url}/function?access_token={TOKEN}&x=1",
        json={"diy": True, "function": "leaky.ping", "options": options("escape")},
        timeout=30,
    )
    emitted.append(_emitted(escaped))
    assert escaped.status_code == 422

    # The connector that failed to import: a short reason and a reference, no detail.
    unavailable = call("leakybroken.ping", options())
    (entry,) = unavailable.json()["errors"]
    assert entry["code"] == "connector_unavailable"
    assert IMPORT_KEY not in entry["message"] and "/" not in entry["message"].split("reference")[0]
    reference = entry["message"].rsplit("reference ", 1)[1].rstrip(").")

    # The operator's routes, from loopback (allowed by default).
    for route in ("/metrics", "/openapi.json"):
        response = requests.get(leaky.url + route, timeout=10)
        assert response.status_code == 200
        emitted.append(_emitted(response))
    metrics = emitted[-2]
    assert 'outcome="********"' in metrics  # the code a plugin chose was a secret

    log = leaky.log()
    # Every path really ran: the records are there, masked.
    for expected in (
        '"logger":"gateway.stdout"',
        '"logger":"gateway.stderr"',
        '"logger":"py.warnings"',
        "uncaught exception in thread",
        "uncaught exception in greenlet",
        "background raw ******** end",
        "split ******** done",
        f"reference {reference}",
    ):
        assert expected in log, expected
    leaky.stop()
    log = leaky.log()  # with the lines of the shutdown
    assert "exited with code" not in log  # capturing output does not break a worker's exit
    assert IMPORT_KEY in log  # the detail of the import failure is the log's (an env key, not a call's)
    for line in log.splitlines():
        assert isinstance(json.loads(line), dict), line
    assert hits(log) == []
    for text in emitted:
        assert hits(text) == [], text


def test_short_values_under_encrypted_do_not_garble_messages(gateway):
    body = {
        "diy": True,
        "function": "leaky.ping",
        "options": {
            "connection": {
                "encrypted": {"region": "eu", "ssl": "true", "n": 2},
                "unencrypted": {"leak": "short"},
            }
        },
    }
    (entry,) = post(gateway.url, body).json()["errors"]
    assert entry["message"] == "record 2 of 12 failed in eu-west; ssl is true"


def test_too_many_secrets_are_refused_with_422(gateway):
    encrypted = {f"key{i}": f"many-secrets-{i:08d}" for i in range(20_000)}
    response = gateway.call("kit.ping", {"connection": {"encrypted": encrypted}})
    assert response.status_code == 422
    (entry,) = response.json()["errors"]
    assert entry["code"] == "too_many_secrets" and "many-secrets-" not in response.text
    # The worker is not stalled: the next call is answered at once.
    assert gateway.call("kit.ping", {"connection": {}}, timeout=10).json() == {"statusCode": 200}


# -- exposure an operator chooses ------------------------------------------------------


def _kit(start_gateway, **env):
    """A one-worker gateway serving the kit connector, with these WRAPGATE_* settings."""
    return start_gateway(
        {"WRAPGATE_PLUGINS": "kit", **{f"WRAPGATE_{k}": v for k, v in env.items()}}, workers=1
    )


def _get(server, route, **headers):
    return requests.get(server.url + route, headers=headers, timeout=10)


def test_operator_routes_are_loopback_only_by_default(start_gateway):
    server = _kit(start_gateway)
    for route in ("/metrics", "/openapi.json"):
        assert _get(server, route).status_code == 200
        # Through a trusted proxy (127.0.0.1 by default), the client is the forwarded address.
        refused = _get(server, route, **{"X-Forwarded-For": "203.0.113.9"})
        assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "forbidden"


def test_operator_routes_follow_the_metrics_token_or_the_explicit_opening(start_gateway):
    server = start_gateway(
        {"WRAPGATE_PLUGINS": "kit", "WRAPGATE_METRICS_TOKEN": "Metrics-Token-42"}, workers=1
    )
    for route in ("/metrics", "/openapi.json"):
        assert _get(server, route).status_code == 401
        assert _get(server, route, Authorization=f"Bearer {TOKEN}").status_code == 401
        assert _get(server, route, Authorization="Bearer Metrics-Token-42").status_code == 200
    opened = _kit(start_gateway, METRICS_OPEN="true")
    assert _get(opened, "/openapi.json", **{"X-Forwarded-For": "203.0.113.9"}).status_code == 200


def test_wrong_tokens_are_limited_per_client_address(start_gateway):
    server = _kit(start_gateway, FAILED_TOKEN_LIMIT="5", METRICS_TOKEN="Metrics-Tok-1")
    body = {"diy": True, "function": "kit.ping", "options": {}}
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    statuses = [post(server.url, body, token=f"guess-{i}", headers=attacker).status_code for i in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    blocked = post(server.url, body, token=TOKEN, headers=attacker)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["errors"][0]["code"] == "too_many_failed_tokens"
    # Another client (and the proxy's own address) is not affected.
    assert post(server.url, body, headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
    assert post(server.url, body).status_code == 200
    # The metrics token is guarded by the same count.
    right = {"Authorization": "Bearer Metrics-Tok-1"}
    assert _get(server, "/metrics", **attacker, **right).status_code == 429
    assert _get(server, "/metrics", **right).status_code == 200


def test_forwarded_for_is_ignored_from_untrusted_peers(start_gateway):
    """The peer (127.0.0.1) is not a trusted proxy here: a client cannot escape the
    limit by naming another address."""
    server = _kit(start_gateway, FAILED_TOKEN_LIMIT="3", FORWARDED_ALLOW_IPS="192.0.2.1")
    body = {"diy": True, "function": "kit.ping", "options": {}}
    statuses = [
        post(server.url, body, token="guess", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_metrics_label_cardinality_is_bounded(start_gateway):
    server = _kit(start_gateway, METRICS_CONNECTIONS="3")
    for i in range(12):
        assert server.call("kit.ping", {"connection": {"_id": f"conn-{i:03d}"}}).status_code == 200
    text = _get(server, "/metrics").text

    def labelled():
        return {
            line.split('connection="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith("wrapgate_connection_in_flight") and 'connection="' in line
        }

    assert labelled() == {"conn-000", "conn-001", "conn-002", "other"}


# -- TLS termination (the compose stack's nginx, for real) ------------------------------


@pytest.fixture
def tls_proxy(start_gateway, tmp_path):
    """A real nginx running config/nginx-wrapgate.conf in front of a real gunicorn, with
    a certificate made by the very openssl command docker-compose.yml runs at start."""
    import shutil
    import subprocess

    import yaml
    from support import ROOT, free_port

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (tmp_path / "tls").mkdir()
    command = [
        arg.replace("/tls/", f"{tmp_path}/tls/") for arg in compose["services"]["tls-demo-cert"]["command"]
    ]
    subprocess.run(["openssl", *command], check=True, capture_output=True, timeout=120)
    server = _kit(start_gateway, FAILED_TOKEN_LIMIT="3")
    port = free_port()
    site = (ROOT / "config" / "nginx-wrapgate.conf").read_text()
    assert "listen 8443 ssl;" in site
    (tmp_path / "nginx-wrapgate.conf").write_text(
        site.replace("listen 8443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    )
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"""
        user root;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/error.log;
        events {{}}
        http {{
            {temp}
            upstream gateways {{ server 127.0.0.1:{server.port}; keepalive 4; }}
            include nginx-wrapgate.conf;
        }}
        """
    )
    out = open(tmp_path / "nginx.out", "wb")
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stdout=out,
        stderr=subprocess.STDOUT,
    )

    def up():
        assert proc.poll() is None, (tmp_path / "error.log").read_text()
        try:
            return requests.get(
                f"https://127.0.0.1:{port}/livez", verify=str(tmp_path / "tls" / "demo.crt"), timeout=2
            ).ok
        except requests.ConnectionError:
            return False

    try:
        wait_until(up, 30, what="nginx")
        yield f"https://127.0.0.1:{port}", str(tmp_path / "tls" / "demo.crt"), tmp_path / "nginx.out"
    finally:
        proc.terminate()
        proc.wait(10)
        out.close()


def test_tls_termination_keeps_operator_routes_and_forged_addresses_out(tls_proxy):
    url, certificate, access_log = tls_proxy
    body = {"diy": True, "function": "kit.ping", "options": {}}
    # A call over HTTPS, the demo certificate verified.
    assert post(url, body, verify=certificate).json() == {"statusCode": 200}
    # Plain HTTP on the TLS port is refused by nginx.
    assert requests.post(url.replace("https", "http") + "/function", json=body, timeout=10).status_code == 400
    # The operator's routes never leave the private network.
    for route in ("/metrics", "/openapi.json"):
        assert requests.get(url + route, verify=certificate, timeout=10).status_code == 403
    # A client cannot pick the address its wrong tokens are counted by.
    statuses = [
        post(
            url, body, token="guess", verify=certificate, headers={"X-Forwarded-For": f"203.0.113.{i}"}
        ).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    # nginx's own access log carries no query string.
    assert requests.get(f"{url}/healthCheck?access_token={TOKEN}", verify=certificate, timeout=10).ok
    # nginx writes the line after the response has gone out: wait for it.
    wait_until(lambda: '"GET /healthCheck" 200' in access_log.read_text(), 10, what="nginx's access log line")
    assert TOKEN not in access_log.read_text()


def test_client_address_trusts_forwarded_for_only_from_listed_proxies():
    from gateway.auth import ClientAddress
    from gateway.errors import ConfigurationError

    client = ClientAddress(["10.0.0.0/8", "::1"])
    forwarded = {"HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.5, 10.1.2.3"}
    assert client({"REMOTE_ADDR": "10.9.9.9", **forwarded}) == "203.0.113.5"  # nearest untrusted hop
    assert client({"REMOTE_ADDR": "::ffff:10.0.0.1", **forwarded}) == "203.0.113.5"
    assert client({"REMOTE_ADDR": "192.0.2.1", **forwarded}) == "192.0.2.1"  # not a trusted proxy
    with pytest.raises(ConfigurationError, match="not-an-ip"):
        ClientAddress(["not-an-ip"])
