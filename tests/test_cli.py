"""The wrapgate command, run as a user runs it: a subprocess of the installed script."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from support import ROOT, TESTKIT, TOKEN, free_port, post, wait_until

WRAPGATE = shutil.which("wrapgate", path=str(Path(sys.executable).parent)) or "wrapgate"


@pytest.fixture
def env(testkit_site):
    base = {k: v for k, v in os.environ.items() if not k.startswith("WRAPGATE_")}
    return dict(base, PYTHONPATH=f"{testkit_site}{os.pathsep}{TESTKIT}")


def run(env, *args, stdin=None):
    return subprocess.run(
        [WRAPGATE, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_plugins_lists_connectors_functions_and_load_errors(env):
    out = run(env, "plugins")
    assert out.returncode == 1  # some plugins failed: scripts can tell
    assert "kit 1.0 (wrapgate-testkit)" in out.stdout
    assert "functions: kit.export, kit.exportOrders, kit.import, kit.ping, kit.pingAgain" in out.stdout
    assert "FAILED TO LOAD: import of 'wrapgate_testkit.broken' failed" in out.stdout
    assert "observer (extension)" in out.stdout


def test_plugins_json(env):
    listing = json.loads(run(env, "plugins", "--json").stdout)
    by_name = {c["name"]: c for c in listing["connectors"]}
    assert by_name["strict"]["loaded"] is True and by_name["strict"]["package"] == "wrapgate-testkit"
    assert by_name["badsig"]["loaded"] is False and "no_such_argument" in by_name["badsig"]["error"]
    assert listing["extensions"] == ["observer"]


def test_plugins_with_nothing_installed_says_how_to_add_one(env):
    # An empty allowlist loads no plugin at all (as DATASETTE_LOAD_PLUGINS does).
    out = run(dict(env, PYTHONPATH="", WRAPGATE_PLUGINS=""), "plugins")
    assert out.returncode == 0 and "pip install" in out.stdout


def test_call_prints_the_result(env):
    out = run(
        env, "call", "kit.export", "--options", "-", stdin=json.dumps({"configuration": {"records": 2}})
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "data": [{"id": "r0", "n": 0}, {"id": "r1", "n": 1}],
        "lastPage": True,
        "state": None,
    }


def test_call_prints_the_shaped_error_and_fails(env, tmp_path):
    options = tmp_path / "options.json"
    options.write_text(
        json.dumps(
            {"connection": {"unencrypted": {"mode": "boom"}, "encrypted": {"password": "topsecret-value"}}}
        )
    )
    out = run(env, "call", "kit.ping", "--options", str(options))
    assert out.returncode == 1
    assert json.loads(out.stdout) == {
        "errors": [{"code": "ValueError", "message": "driver failed while sending ********"}]
    }
    assert "topsecret-value" not in out.stdout + out.stderr


def test_call_with_bad_json_options(env):
    out = run(env, "call", "kit.ping", "--options", "-", stdin="{nope")
    assert out.returncode != 0 and "not valid JSON" in out.stderr


def test_serve_answers_the_protocol_and_stops_on_sigterm(env):
    port = free_port()
    proc = subprocess.Popen(
        [WRAPGATE, "serve", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=dict(env, WRAPGATE_SYSTEM_TOKEN=TOKEN),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up():
            try:
                return requests.get(url + "/livez", timeout=1).ok
            except requests.RequestException:  # not up yet: refused, or too busy booting to answer
                assert proc.poll() is None, proc.stdout.read()
                return False

        wait_until(up, 30, what="wrapgate serve")
        body = {"diy": True, "function": "kit.ping", "options": {"a": 1}}
        assert post(url, body).json() == {"statusCode": 200}
        assert post(url, body, token="wrong").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "connector kit: ok" in output and "connector broken: FAILED" in output


def test_serve_without_a_token_refuses_to_start(env):
    out = run(env, "serve", "--port", str(free_port()))
    assert out.returncode != 0 and "no system token configured" in out.stderr


def test_serve_with_no_connector_still_starts_and_says_how_to_add_one(env):
    port = free_port()
    proc = subprocess.Popen(
        [WRAPGATE, "serve", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=dict(env, PYTHONPATH="", WRAPGATE_PLUGINS="", WRAPGATE_SYSTEM_TOKEN=TOKEN),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: _ok(f"http://127.0.0.1:{port}/readyz"), 30, what="serve")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert "No connector is installed" in output and "pip install" in output


def _ok(url):
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:  # not up yet: refused, or too busy booting to answer
        return False
