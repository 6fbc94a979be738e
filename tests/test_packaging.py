"""The three distributions as a user installs them: wheels only, nothing by name from an index.

A connector that declares ``install_requires = wrapgate...`` must get this
project, never a namesake on the package index. So the wheels of wrapgate,
wrapgate-sql and wrapgate-rest are built from this tree, put in one folder with
the wheels of their dependencies (pinned by constraints.txt), and installed into
a fresh venv with ``--no-index``: pip can take each name only from that folder.
The installed gateway then lists its plugins, passes ``pip check`` and serves
one ``sql.export`` through a real gunicorn started from that venv, outside the
source tree so that nothing is imported from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import pytest
from support import ROOT, free_port, post, wait_until

pytestmark = pytest.mark.slow


def run(*args, **kwargs):
    kwargs.setdefault("timeout", 600)
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{args[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding the three wheels and their dependencies, installed with --no-index."""
    base = tmp_path_factory.mktemp("packaging")
    wheels = base / "wheels"
    # Building needs the index (or pip's cache) for setuptools and the dependencies' wheels.
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "-w",
        wheels,
        "-c",
        ROOT / "constraints.txt",
        f"{ROOT}[redis]",
        f"{ROOT / 'plugins' / 'sql'}[postgres]",
        ROOT / "plugins" / "rest",
    )
    built = sorted(p.name.split("-")[0] for p in wheels.glob("wrapgate*.whl"))
    assert built == ["wrapgate", "wrapgate_rest", "wrapgate_sql"]
    target = base / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    # No configuration, no extra index, no find-links from the machine: only the folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        wheels,
        "wrapgate[redis]",
        "wrapgate-sql[postgres]",
        "wrapgate-rest",
        env=env,
    )
    return target, env


def test_installed_from_wheels_alone_and_consistent(installed):
    target, env = installed
    python = target / "bin" / "python"
    run(python, "-m", "pip", "check", env=env)
    # The CLI is this project's, and the core it imports is the installed one.
    where = run(python, "-c", "import gateway; print(gateway.__file__)", cwd=target, env=env).stdout
    assert str(target) in where
    listing = json.loads(run(target / "bin" / "wrapgate", "plugins", "--json", cwd=target, env=env).stdout)
    loaded = {c["name"]: c for c in listing["connectors"]}
    assert loaded["sql"]["loaded"] and loaded["rest"]["loaded"]
    assert loaded["sql"]["package"] == "wrapgate-sql" and loaded["rest"]["package"] == "wrapgate-rest"


def test_installed_gateway_serves_an_export_through_gunicorn(installed, tmp_path):
    target, env = installed
    database = tmp_path / "demo.sqlite"
    run(target / "bin" / "python", "-m", "wrapgate_sql.demo", database, cwd=tmp_path, env=env)
    port = free_port()
    env = dict(
        env,
        WRAPGATE_SYSTEM_TOKEN="wheel-Token-123",
        WRAPGATE_BIND=f"127.0.0.1:{port}",
        WRAPGATE_WORKERS="1",
        WRAPGATE_SQLITE_PATHS=str(tmp_path),
        PYTHONPATH="",
    )
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [target / "bin" / "gunicorn", "-c", ROOT / "config" / "gunicorn.conf.py", "gateway.app:create_app()"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url, proc), 60, interval=0.2, what="gunicorn from the wheel venv")
        body = {
            "diy": True,
            "type": "wrapper",
            "function": "sql.export",
            "options": {
                "connection": {"_id": "wheel", "unencrypted": {"url": f"sqlite:///{database}"}},
                "configuration": {"table": "customers", "key": "id", "pageSize": 2},
            },
        }
        answer = post(url, body, token="wheel-Token-123")
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["data"]) == 2 and page["lastPage"] is False and page["state"]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _ready(url, proc):
    import requests

    if proc.poll() is not None:
        raise RuntimeError(f"gunicorn exited with {proc.returncode}")
    try:
        return requests.get(url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_old_name_is_gone_but_for_the_changelog():
    """Nothing a user or author types carries the old name (the rename, CHANGELOG 0.2.0)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    old = "stack" + "gate"  # spelled apart, or this file would be a hit
    hits = []
    for name in files.stdout.splitlines():
        path = ROOT / name
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if old in line.lower() or old in name.lower():
                hits.append(f"{name}:{number}")
    assert [h for h in hits if not h.startswith("CHANGELOG.md:")] == []
    assert len(hits) == 1
