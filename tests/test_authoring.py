"""An author's whole path, for real: ``wrapgate new-plugin`` into a temporary folder,
installed into a fresh virtualenv beside the core (wheels built from this
checkout, ``pip --no-index``), its own tests and the conformance suite, then
served by gunicorn and driven with ``spec``/``check``/``read``/``write``
in-process and with ``--url``.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import venv

import pytest
from support import ROOT

from gateway.testing import GatewayProcess

pytestmark = pytest.mark.slow

TOKEN = "authoring-token-0123456789"


def sh(*args, cwd=None, env=None, timeout=300, check=True):
    out = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and out.returncode != 0:
        raise AssertionError(f"{args} exited {out.returncode}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


@pytest.fixture(scope="module")
def author(tmp_path_factory):
    """A fresh virtualenv with the core (from a wheel of this checkout) and a generated
    plugin ``acme`` installed from its folder, both with ``pip --no-index``."""
    base = tmp_path_factory.mktemp("author")
    wheels = base / "wheels"
    # Built from a copy: setuptools writes build/ beside the sources it builds.
    source = base / "source"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "var", "__pycache__")
    )
    # The core's wheel and its dependencies' wheels (from this machine's package sources);
    # the fresh venv then installs with --no-index from this folder alone.
    sh(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "-w",
        wheels,
        f"{source}[test]",
        "setuptools>=69",
        "wheel",
        timeout=600,
    )
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    install = [bin_dir / "python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels]
    sh(*install, "wrapgate[test]", timeout=600)
    out = sh(bin_dir / "wrapgate", "new-plugin", "acme", "--directory", base)
    plugin = base / "wrapgate-acme"
    assert str(plugin) in out.stdout
    sh(*install, f"{plugin}[test]", timeout=600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WRAPGATE_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return {"bin": bin_dir, "plugin": plugin, "env": env, "base": base, "install": install}


def wrapgate(author, *args, env=None, check=False):
    return sh(author["bin"] / "wrapgate", *args, cwd=author["base"], env=env or author["env"], check=check)


@pytest.fixture(scope="module")
def store(author):
    """The generated connector's stand-in system: a folder with a key and seven records."""
    folder = author["base"] / "store"
    (folder / "items").mkdir(parents=True)
    (folder / ".apikey").write_text("store-key-00001")
    for n in range(7):
        (folder / "items" / f"i{n}.json").write_text(json.dumps({"id": f"i{n}", "n": n}))
    files = {
        "connection.json": {
            "_id": "c1",
            "unencrypted": {"folder": str(folder)},
            "encrypted": {"apiKey": "store-key-00001"},
        },
        "refused.json": {
            "_id": "c1",
            "unencrypted": {"folder": str(folder)},
            "encrypted": {"apiKey": "wrong-key-00002"},
        },
        "export.json": {"collection": "items", "pageSize": 3},
        "import.json": {"collection": "written"},
    }
    for name, value in files.items():
        (author["base"] / name).write_text(json.dumps(value))
    (author["base"] / "records.jsonl").write_text('{"id": "w1"}\n{"id": "no/slash"}\n{"id": "w2"}\n')
    return folder


def test_the_generated_plugin_installs_and_is_listed(author):
    out = wrapgate(author, "plugins", check=True)
    assert "acme 0.1.0 (wrapgate-acme)" in out.stdout
    assert "functions: acme.export, acme.import, acme.ping" in out.stdout
    listing = json.loads(wrapgate(author, "plugins", "--json", check=True).stdout)
    (acme,) = [c for c in listing["connectors"] if c["name"] == "acme"]
    assert acme["spec"]["connection"]["encrypted"]["required"] == ["apiKey"]


def test_its_own_tests_and_the_conformance_suite_pass(author):
    out = sh(
        author["bin"] / "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=author["plugin"],
        env=author["env"],
        check=False,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    # 4 of its own, 9 of the suite (conformance.Conformance), none skipped
    assert "13 passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]


def test_the_conformance_suite_by_command_line_option(author, tmp_path):
    # No test file of its own: the option alone adds the suite beside the samples' conftest.
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text((author["plugin"] / "tests" / "conftest.py").read_text())
    args = [author["bin"] / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", tests]
    out = sh(*args, "--wrapgate-conformance", "acme", cwd=tmp_path, env=author["env"], check=False)
    assert out.returncode == 0 and "9 passed" in out.stdout, out.stdout[-4000:]
    # Without samples the option says what is missing instead of passing vacuously.
    (tests / "conftest.py").write_text("")
    out = sh(*args, "--wrapgate-conformance", "acme", cwd=tmp_path, env=author["env"], check=False)
    assert out.returncode != 0 and "wrapgate_samples" in out.stdout + out.stderr


def drive(author, url_args=(), env=None):
    """spec, check, read and write against acme; in-process, or with --url."""
    run = lambda *a: wrapgate(author, *a, *url_args, env=env)  # noqa: E731
    spec = run("spec", "acme", "--json")
    assert spec.returncode == 0, spec.stderr
    functions = json.loads(spec.stdout)["spec"]["functions"]
    assert functions["acme.export"]["configuration"]["required"] == ["collection"]

    ok = run("check", "acme.ping", "--connection", "connection.json")
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok: acme.ping answered statusCode 200")
    refused = run("check", "acme.ping", "--connection", "refused.json")
    assert refused.returncode == 1
    assert "statusCode 401: unauthorized: acme refused the API key" in refused.stdout
    assert "wrong-key-00002" not in refused.stdout + refused.stderr

    read = run(
        "read", "acme.export", "--connection", "connection.json", "--configuration", "export.json", "--json"
    )
    assert read.returncode == 0, read.stderr
    assert [json.loads(line)["id"] for line in read.stdout.splitlines()] == [f"i{n}" for n in range(7)]
    summary = json.loads(read.stderr.strip().splitlines()[-1])
    assert (summary["ok"], summary["pages"], summary["records"]) == (True, 3, 7)
    offline = run("read", "acme.export", "--connection", "refused.json", "--configuration", "export.json")
    assert offline.returncode == 1 and "connectionOffline" in offline.stderr

    write = run(
        "write",
        "acme.import",
        "--connection",
        "connection.json",
        "--configuration",
        "import.json",
        "--records",
        "records.jsonl",
        "--batch",
        "2",
    )
    outcomes = [json.loads(line) for line in write.stdout.splitlines()]
    assert [(o["index"], o["statusCode"]) for o in outcomes] == [(0, 200), (1, 422), (2, 200)]
    assert write.returncode == 1 and "1 of 3 records failed" in write.stderr


def test_spec_check_read_write_in_process(author, store):
    drive(author)
    assert sorted(p.name for p in (store / "written").iterdir()) == ["w1.json", "w2.json"]


def test_served_by_gunicorn_and_driven_with_url(author, store, tmp_path):
    server = GatewayProcess(
        tmp_path,
        env=dict(author["env"], WRAPGATE_PLUGINS="acme"),
        workers=1,
        token=TOKEN,
        python=str(author["bin"] / "python"),
    )
    with server:
        drive(author, ("--url", server.url), env=dict(author["env"], WRAPGATE_SYSTEM_TOKEN=TOKEN))
        missing = wrapgate(
            author, "check", "acme.ping", "--connection", "connection.json", "--url", server.url
        )
        assert missing.returncode != 0 and "WRAPGATE_SYSTEM_TOKEN" in missing.stderr
    assert server.proc.returncode == 0


def test_the_shortest_plugin_of_the_guide_installs_and_serves(author, tmp_path):
    # The guide's two files, exactly as printed there (each block opens with its path).
    guide = (ROOT / "docs" / "authoring.md").read_text()
    blocks = re.findall(r"```\w+\n# (wrapgate-hello/[\w.]+)\n(.*?)```", guide, re.S)
    assert [path for path, _ in blocks] == [
        "wrapgate-hello/pyproject.toml",
        "wrapgate-hello/wrapgate_hello.py",
    ]
    for path, text in blocks:
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    sh(*author["install"], tmp_path / "wrapgate-hello", timeout=600)
    (tmp_path / "c.json").write_text("{}")
    out = wrapgate(author, "read", "hello.export", "--connection", tmp_path / "c.json")
    assert out.returncode == 0, out.stderr
    assert out.stdout == '{"id":1,"greeting":"hello"}\n'
    assert wrapgate(author, "check", "hello.ping", "--connection", tmp_path / "c.json").returncode == 0
