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
from support import FAULTYKIT, ROOT, TESTKIT, TOKEN, free_port, post, wait_until, write_faulty_site

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
                return requests.get(url + "/livez", timeout=2).ok
            except requests.RequestException:  # refused, or a read timeout while the worker boots
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
        return requests.get(url, timeout=2).ok
    except requests.RequestException:  # refused, or a read timeout while the worker boots
        return False


# -- spec, check, read, write: what an author and an operator run -------------------------


@pytest.fixture
def files(tmp_path):
    """Connection/configuration files for the testkit connectors; a path by name."""

    def write(name, value):
        path = tmp_path / name
        path.write_text(value if isinstance(value, str) else json.dumps(value))
        return str(path)

    return write


def test_call_fails_on_a_refused_ping_and_an_offline_export(env):
    # Answered 200 on the wire, yet failures: scripts must be able to tell.
    refused = {"connection": {"unencrypted": {"mode": "refuse"}, "encrypted": {"password": "pw-123456"}}}
    out = run(env, "call", "kit.ping", "--options", "-", stdin=json.dumps(refused))
    assert out.returncode == 1 and json.loads(out.stdout)["statusCode"] == 401
    offline = {"configuration": {"raise": "offline"}}
    out = run(env, "call", "kit.export", "--options", "-", stdin=json.dumps(offline))
    assert out.returncode == 1 and json.loads(out.stdout)["connectionOffline"] is True


def test_check_says_what_is_wrong(env, files):
    ok = run(env, "check", "kit.ping", "--connection", files("ok.json", {"unencrypted": {}}))
    assert (ok.returncode, ok.stdout) == (0, "ok: kit.ping answered statusCode 200\n")
    connection = {"unencrypted": {"mode": "refuse"}, "encrypted": {"password": "pw-secret-1"}}
    refused = run(env, "check", "kit.ping", "--connection", files("no.json", connection), "--json")
    assert refused.returncode == 1
    answer = json.loads(refused.stdout)
    assert answer["ok"] is False
    assert answer["problem"] == "statusCode 401: unauthorized: login with password ******** was refused"
    assert "pw-secret-1" not in refused.stdout + refused.stderr
    offline = run(
        env, "check", "kit", "--connection", files("off.json", {"unencrypted": {"mode": "offline"}})
    )
    assert offline.returncode == 1
    assert offline.stdout.splitlines() == [
        "FAILED: kit.ping answered statusCode 401: connection_offline: host db.example.invalid is unreachable",
        "  hint: the system could not be reached: check the host or URL in the unencrypted section, "
        "and that this machine can reach it",
    ]
    assert answer["hint"].startswith("the system refused the credentials")


def test_read_pages_an_export_passing_state_back(env, files):
    conf = files("conf.json", {"pages": 3, "records": 2})
    out = run(
        env, "read", "kit.export", "--connection", files("c.json", {}), "--configuration", conf, "--json"
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["id"] for line in out.stdout.splitlines()] == [f"r{n}" for n in range(6)]
    summary = json.loads(out.stderr.splitlines()[-1])  # after the plugins' load log lines
    assert (summary["ok"], summary["pages"], summary["records"]) == (True, 3, 6)
    test = run(env, "read", "kit.export", "--connection", files("c.json", {}), "--configuration", conf,
               "--type", "test", "--limit", "1")  # fmt: skip
    assert test.returncode == 0 and len(test.stdout.splitlines()) == 1
    assert test.stderr.splitlines()[-1].startswith("ok: 1 pages, 1 records in ")


def test_read_stops_on_connection_offline(env, files):
    conf = files("conf.json", {"raise": "offline"})
    out = run(env, "read", "kit.export", "--connection", files("c.json", {}), "--configuration", conf)
    assert out.returncode == 1 and out.stdout == ""
    assert "FAILED: connectionOffline: connection_offline: API answered 503 three times" in out.stderr


def test_read_stops_when_the_same_page_comes_back(env, files, tmp_path):
    site = write_faulty_site(tmp_path / "site")
    env = dict(env, PYTHONPATH=f"{site}{os.pathsep}{FAULTYKIT}", WRAPGATE_PLUGINS="faulty")
    out = run(env, "read", "faulty.export", "--connection", files("c.json", {}))
    assert out.returncode == 1
    assert len(out.stdout.splitlines()) == 5  # five pages given, the sixth identical one stopped it
    assert "the same page came back 6 times (page 6)" in out.stderr


def test_write_prints_one_outcome_per_record_in_batches(env, files):
    records = files("records.jsonl", '{"id": "a"}\n{"id": "b", "bad": true}\n{"id": "c"}\n')
    out = run(env, "write", "kit.import", "--connection", files("c.json", {}), "--records", records,
              "--batch", "2")  # fmt: skip
    outcomes = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(o["index"], o["statusCode"], o.get("id")) for o in outcomes] == [
        (0, 200, "a"), (1, 422, None), (2, 200, "c"),
    ]  # fmt: skip
    assert outcomes[1]["errors"] == [{"code": "ValueError", "message": "record 1 is bad"}]
    assert out.returncode == 1 and out.stderr.endswith("\nFAILED: 1 of 3 records failed\n")
    good = files("good.json", [{"id": "x"}, {"id": "y"}])
    assert (
        run(env, "write", "kit.import", "--connection", files("c.json", {}), "--records", good).returncode
        == 0
    )


def test_write_fails_every_record_of_a_batch_the_gateway_refused(env, files):
    conf = files("conf.json", {"drop": 1})  # the connector answers one result short
    records = files("r.json", [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    out = run(env, "write", "kit.import", "--connection", files("c.json", {}), "--configuration", conf,
              "--records", records, "--batch", "3")  # fmt: skip
    outcomes = [json.loads(line) for line in out.stdout.splitlines()]
    assert [o["statusCode"] for o in outcomes] == [422, 422, 422]
    assert outcomes[0]["errors"][0]["code"] == "invalid_extension_response"
    assert out.returncode == 1


def test_spec_prints_functions_and_json_schemas(env):
    out = run(env, "spec", "strict")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "strict 1.0 (wrapgate-testkit)",
        "  connection.unencrypted: host*, port",
        "  connection.encrypted: password*",
        "  strict.export (export) configuration: table*, pageSize",
        "  strict.ping (ping)",
    ]
    schema = json.loads(run(env, "spec", "strict", "--json").stdout)["spec"]
    assert schema["functions"]["strict.export"]["configuration"]["properties"]["pageSize"]["default"] == 100
    missing = run(env, "spec", "nope")
    assert missing.returncode == 1 and "no connector 'nope'" in missing.stderr
    broken = run(env, "spec", "broken")
    assert broken.returncode == 1 and "failed to load" in broken.stderr


def test_commands_with_url_run_against_a_deployed_gateway(env, gateway, files):
    env = dict(env, WRAPGATE_SYSTEM_TOKEN=TOKEN)
    url = ("--url", gateway.url)
    spec = run(env, "spec", "strict", "--json", *url)
    assert spec.returncode == 0 and json.loads(spec.stdout)["spec"]["connection"]["encrypted"][
        "required"
    ] == ["password"]
    refused = files("no.json", {"unencrypted": {"mode": "refuse"}, "encrypted": {"password": "pw-secret-2"}})
    out = run(env, "check", "kit.ping", "--connection", refused, *url)
    assert out.returncode == 1 and "statusCode 401: unauthorized" in out.stdout
    conf = files("conf.json", {"pages": 2, "records": 2})
    read = run(env, "read", "kit.export", "--connection", files("c.json", {}), "--configuration", conf, *url)
    assert read.returncode == 0 and len(read.stdout.splitlines()) == 4
    wrong = run(dict(env, WRAPGATE_SYSTEM_TOKEN="wrong"), "check", "kit.ping", "--connection", refused, *url)
    assert wrong.returncode == 1 and "HTTP 401: unauthorized: Invalid system token." in wrong.stdout


def test_new_plugin_refuses_bad_names_and_existing_folders(env, tmp_path):
    bad = run(env, "new-plugin", "Acme-Co", "--directory", str(tmp_path))
    assert bad.returncode == 1 and "not a connector name" in bad.stderr
    assert run(env, "new-plugin", "acme", "--directory", str(tmp_path)).returncode == 0
    # What it writes is lint- and format-clean as generated (the project's own rules).
    ruff = [str(Path(sys.executable).parent / "ruff")]
    rules = ["--isolated", "--line-length", "110"]
    target = str(tmp_path / "wrapgate-acme")
    lint = subprocess.run(  # from its folder, as its author runs it: wrapgate_acme is first party
        [*ruff, "check", *rules, "--select", "E,F,W,I,B,UP,RUF", "."], cwd=target, capture_output=True
    )
    assert lint.returncode == 0, lint.stdout
    assert subprocess.run([*ruff, "format", "--check", *rules, target], capture_output=True).returncode == 0
    again = run(env, "new-plugin", "acme", "--directory", str(tmp_path))
    assert again.returncode == 1 and "exists already" in again.stderr


def test_plugins_explains_what_an_extension_is(env):
    out = run(env, "plugins")
    assert "observer (extension)" in out.stdout and "has no @hookimpl" in out.stdout


def test_read_shows_progress_on_a_terminal_only(env, files):
    import pty

    conf = files("conf.json", {"pages": 2, "records": 1})
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [WRAPGATE, "read", "kit.export", "--connection", files("c.json", {}), "--configuration", conf],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave, timeout=60,
        )  # fmt: skip
        os.close(slave)
        slave = None
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2
    assert b"\rpage 1, 1 records" in seen and b"\rpage 2, 2 records" in seen
    assert b"ok: 2 pages, 2 records in " in seen
    # Not a terminal (the other tests): no progress line among the output.
    plain = run(env, "read", "kit.export", "--connection", files("c.json", {}), "--configuration", conf)
    assert "\rpage" not in plain.stderr
