"""Side by side with the reference stack: the same requests, the same answers.

The peer (../shared/peer) is a stand-in of integrator.io's Node Server stack
built from its published core; it is installed with npm and run on a loopback
port by this module's fixture. Each request below goes to both; status,
WWW-Authenticate and the JSON body must match. Where wrapgate is deliberately
different (PROTOCOL.md, "Where the gateway is deliberately better"), the
request is not here but in test_protocol.py.
"""

import json
import os
import shutil
import subprocess

import pytest
import requests
from support import ROOT, Gunicorn, free_port, wait_until

PEER = ROOT.parent / "shared" / "peer"
TOKEN = "conformance-token"
CONNECTION = {
    "_id": "64b000000000000000000003",
    "type": "wrapper",
    "wrapper": {"unencrypted": {"baseUrl": "https://api.example.invalid"}, "encrypted": {}},
}


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    if not PEER.is_dir():
        pytest.skip(f"no reference stand-in at {PEER}")
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed; the reference stand-in needs Node.js")
    folder = tmp_path_factory.mktemp("peer")
    shutil.copytree(PEER, folder, dirs_exist_ok=True)
    subprocess.run(
        ["npm", "ci", "--silent", "--no-audit", "--no-fund"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = free_port()
    proc = subprocess.Popen(
        ["node", "server.js"],
        cwd=folder,
        env=dict(os.environ, PORT=str(port), TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url), 30, what="the reference stand-in")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def ours(testkit_site, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformance")
    config = folder / "gateway.toml"
    # The peer's bare function names, mapped to the bench connector's wire names.
    config.write_text(
        '[aliases]\nping = "bench.ping"\nexportPage = "bench.exportPage"\nimportEcho = "bench.importEcho"\n'
    )
    bench = ROOT / "bench"
    site = folder / "site"
    info = site / "wrapgate_bench-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wrapgate-bench\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[wrapgate]\nbench = wrapgate_bench\n")
    server = Gunicorn(
        testkit_site,
        folder,
        workers=1,
        env={
            "WRAPGATE_CONFIG": str(config),
            "WRAPGATE_SYSTEM_TOKEN": TOKEN,
            "WRAPGATE_PLUGINS": "bench",
            "PYTHONPATH": f"{site}{os.pathsep}{bench}",
        },
    )
    with server:
        yield server.url


def _up(url):
    try:
        return requests.get(url + "/", timeout=1).ok
    except requests.RequestException:
        return False


def options(**extra):
    return {"connection": CONNECTION, "_integrationId": "64b000000000000000000001", **extra}


CASES = {
    "ping": {"diy": True, "type": "wrapper", "function": "ping", "options": options()},
    "export page": {
        "diy": True,
        "type": "wrapper",
        "function": "exportPage",
        "options": options(configuration={"records": 7}),
    },
    "import echo": {
        "diy": True,
        "type": "wrapper",
        "function": "importEcho",
        "options": options(postMapData=[{"a": 1}, {"b": 2}, {"c": 3}]),
    },
    "empty body": {},
    "no diy": {"function": "ping", "options": options()},
    "connector id not served": {"_connectorId": "nope", "function": "ping", "options": options()},
    "function missing": {"diy": True, "options": options()},
    "function empty": {"diy": True, "function": "", "options": options()},
    "function not a string": {"diy": True, "function": 42, "options": options()},
    "options missing": {"diy": True, "function": "ping"},
    "options null": {"diy": True, "function": "ping", "options": None},
    "all three, in order": {"_connectorId": "x", "function": ["ping"]},
    "unknown group": {"diy": True, "type": "hook", "function": "ping", "options": options()},
    "unknown group installer": {"diy": True, "type": "installer", "function": "ping", "options": options()},
    "unknown function": {"diy": True, "type": "wrapper", "function": "nothingHere", "options": options()},
    "response too large": {
        "diy": True,
        "type": "wrapper",
        "function": "exportPage",
        "maxResponseSize": 1000,
        "options": options(configuration={"records": 20}),
    },
    "limit as a numeric string": {
        "diy": True,
        "type": "wrapper",
        "function": "exportPage",
        "maxResponseSize": "900",
        "options": options(configuration={"records": 10}),
    },
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_answer_as_the_reference(peer, ours, name):
    body = json.dumps(CASES[name])
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    theirs = requests.post(peer + "/function", data=body, headers=headers, timeout=30)
    mine = requests.post(ours + "/function", data=body, headers=headers, timeout=30)
    assert mine.status_code == theirs.status_code
    assert mine.json() == theirs.json()


@pytest.mark.parametrize("how", ["wrong bearer", "no token", "body token", "query token", "basic scheme"])
def test_same_auth_answers_as_the_reference(peer, ours, how):
    body = {"diy": True, "type": "wrapper", "function": "ping", "options": options()}
    headers, params = {"Content-Type": "application/json"}, None
    if how == "wrong bearer":
        headers["Authorization"] = "Bearer wrong"
    elif how == "body token":
        body["access_token"] = TOKEN
    elif how == "query token":
        params = {"access_token": TOKEN}
    elif how == "basic scheme":
        headers["Authorization"] = "Basic Y29uZm9ybWFuY2U="
        params = {"access_token": TOKEN}
    answers = [
        requests.post(url + "/function", data=json.dumps(body), headers=headers, params=params, timeout=30)
        for url in (peer, ours)
    ]
    assert answers[0].status_code == answers[1].status_code
    assert answers[0].json() == answers[1].json()
    assert answers[0].headers.get("WWW-Authenticate") == answers[1].headers.get("WWW-Authenticate")


@pytest.mark.parametrize("path", ["/", "/healthCheck"])
def test_same_health_answers(peer, ours, path):
    assert requests.get(peer + path).json() == requests.get(ours + path).json()
