"""Entry-point discovery in real gunicorn processes: strict mode, allowlist, no token."""

import os
import subprocess
import sys

import pytest
import requests
from support import ROOT, TESTKIT, post


def test_allowlist_loads_only_the_named_plugins(start_gateway):
    server = start_gateway({"WRAPGATE_PLUGINS": "kit"}, workers=1)
    body = {"diy": True, "function": "strict.ping", "options": {"a": 1}}
    assert post(server.url, body).json()["errors"][0]["code"] == "invalid_function"
    assert post(server.url, dict(body, function="kit.ping")).json() == {"statusCode": 200}
    assert "broken" not in server.log()  # not even tried


def test_strict_mode_refuses_to_start_when_a_plugin_is_broken(testkit_site, tmp_path):
    server_env = {"WRAPGATE_STRICT_PLUGINS": "true"}
    from support import Gunicorn

    server = Gunicorn(testkit_site, tmp_path, env=server_env, workers=1)
    with pytest.raises(RuntimeError, match="exited"):
        server.start(timeout=30)
    log = server.log()
    assert "strict mode" in log and "wrapgate_missing_driver" in log
    server.stop()


def test_strict_mode_starts_when_every_allowed_plugin_loads(start_gateway):
    server = start_gateway({"WRAPGATE_STRICT_PLUGINS": "1", "WRAPGATE_PLUGINS": "kit,strict"}, workers=1)
    assert requests.get(server.url + "/readyz").status_code == 200


def test_gunicorn_refuses_to_start_without_a_token(testkit_site, tmp_path):
    from support import Gunicorn

    server = Gunicorn(testkit_site, tmp_path, env={"WRAPGATE_SYSTEM_TOKEN": ""}, workers=1)
    with pytest.raises(RuntimeError, match="exited"):
        server.start(timeout=30)
    assert "no system token configured" in server.log()
    server.stop()


def test_allowlisted_name_that_is_not_installed_is_reported(testkit_site):
    env = dict(os.environ, PYTHONPATH=f"{testkit_site}:{TESTKIT}", WRAPGATE_PLUGINS="kit,ghost")
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "plugins"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert "ghost" in out.stdout and "no installed distribution" in out.stdout
    assert out.returncode == 1
