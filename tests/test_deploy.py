"""The container and compose files, checked without a Docker engine (none runs here).

The Dockerfile's final command is run on this machine, with the environment it
sets, as the container would run it; its HEALTHCHECK command is run against
that. docker-compose.yml is validated by docker-compose itself (`config`,
which needs no engine) and its deployment rules are checked on the result.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from support import ROOT, TESTKIT, free_port, post, wait_until


def dockerfile_stages():
    """[(FROM line, [(instruction, argument)])] with line continuations joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    stages = []
    heredoc = None
    for line in text.splitlines():
        if heredoc:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, argument = line.strip().partition(" ")
        match = re.search(r"<<'?(\w+)'?", argument)
        if match:
            heredoc = match.group(1)
        if instruction.upper() == "FROM":
            stages.append((argument, []))
        else:
            stages[-1][1].append((instruction.upper(), argument.strip()))
    return stages


def final_stage():
    return dockerfile_stages()[-1]


def env_of(instructions):
    env = {}
    for instruction, argument in instructions:
        if instruction == "ENV":
            for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', argument):
                env[key] = value.strip('"')
    return env


def test_image_is_multi_stage_slim_and_runs_as_a_user():
    stages = dockerfile_stages()
    assert len(stages) == 2 and all("slim" in base for base, _ in stages)
    base, final = final_stage()
    instructions = [i for i, _ in final]
    user = [a for i, a in final if i == "USER"]
    assert user and user[-1] not in ("root", "0")
    # No compiler or package manager work in the final image.
    assert not any(i == "RUN" and re.search(r"apt-get|gcc|build-essential", a) for i, a in final)
    assert "HEALTHCHECK" in instructions and ("STOPSIGNAL", "SIGTERM") in final
    # Dependencies are installed before the source is copied (layer caching).
    build = stages[0][1]
    steps = [f"{i} {a}" for i, a in build]
    deps = next(n for n, s in enumerate(steps) if "pip install --no-cache-dir -c constraints.txt" in s)
    source = next(n for n, s in enumerate(steps) if s.startswith("COPY gateway"))
    assert deps < source


def test_image_builds_with_the_classic_builder_and_carries_no_demo_files():
    text = (ROOT / "Dockerfile").read_text()
    # Heredocs and RUN --mount are BuildKit-only: the classic builder must build this file.
    assert "<<" not in text and "--mount" not in text
    _, final = final_stage()
    copies = [a for i, a in final if i in ("COPY", "ADD") and "--from=" not in a]
    # Of config/, the running gateway reads only its gunicorn configuration.
    assert copies == ["config/gunicorn.conf.py config/gunicorn.conf.py"]
    assert (ROOT / "config" / "postgres-demo-password.secret").exists()  # it is there to be left out
    # Every dependency is installed with the committed constraints.
    build = " ".join(a for i, a in dockerfile_stages()[0][1] if i == "RUN")
    assert "-c constraints.txt" in build and "pip check" in build


def test_the_containers_command_serves_here(tmp_path, testkit_site):
    _, final = final_stage()
    command = json.loads(next(a for i, a in final if i == "CMD"))
    health = json.loads(re.sub(r"^(--\S+\s+)*CMD\s+", "", next(a for i, a in final if i == "HEALTHCHECK")))
    assert command == ["gunicorn", "-c", "config/gunicorn.conf.py", "gateway.app:create_app()"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRAPGATE_")}
    env.update(env_of(final))
    env["WRAPGATE_BIND"] = env["WRAPGATE_BIND"].replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{testkit_site}{os.pathsep}{TESTKIT}"
    secret = tmp_path / "wrapgate_token"  # as compose mounts it
    secret.write_text("container-Token-1\n")
    env["WRAPGATE_SYSTEM_TOKEN_FILE"] = str(secret)
    log = open(tmp_path / "container.log", "wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(url, proc), 30, what="the container's command")
        body = {"diy": True, "function": "kit.ping", "options": {"a": 1}}
        assert post(url, body, token="container-Token-1").json() == {"statusCode": 200}
        probe = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in health]
        assert subprocess.run(probe, env=env, timeout=10).returncode == 0
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        log.close()
    lines = (tmp_path / "container.log").read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines)  # JSON logs, every line


def _up(url, proc):
    assert proc.poll() is None, "the container's command exited"
    try:
        return requests.get(url + "/livez", timeout=1).ok
    except requests.RequestException:  # not up yet: refused, or too busy booting to answer
        return False


@pytest.fixture(scope="module")
def compose(tmp_path_factory):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (scripts/test installs Debian's docker-compose)")
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", folder)
    shutil.copytree(ROOT / "config", folder / "config")
    (folder / "wrapgate_token.secret").write_text("token\n")
    shutil.copy(ROOT / "Dockerfile", folder)
    out = subprocess.run(
        [binary, "-f", "docker-compose.yml", "config"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_file_is_valid_and_wires_the_services(compose):
    services = compose["services"]
    assert set(services) == {"gateway", "lb", "redis", "postgres", "tls-demo-cert"}
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 2
    env = gateway["environment"]
    assert env["WRAPGATE_SYSTEM_TOKEN_FILE"] == "/run/secrets/wrapgate_token"
    assert "WRAPGATE_SYSTEM_TOKEN" not in env
    assert env["WRAPGATE_LIMITER"] == "redis" and env["WRAPGATE_REDIS_URL"].startswith("redis://redis:")
    for name in ("redis", "postgres"):
        assert gateway["depends_on"][name]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"]
    assert services["lb"]["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert "readyz" in " ".join(gateway["healthcheck"]["test"])
    # Only nginx's TLS port is published; the gateway's own port never is.
    assert [p["target"] for p in services["lb"]["ports"]] == [8443]
    assert all("ports" not in services[name] for name in ("gateway", "redis", "postgres"))


def test_compose_stop_grace_outlasts_the_drain(compose):
    from gateway import gunicorn_conf

    grace = compose["services"]["gateway"]["stop_grace_period"]
    seconds = int(re.fullmatch(r"(\d+)s", str(grace)).group(1))
    drain = float(compose["services"]["gateway"]["environment"].get("WRAPGATE_DRAIN_DELAY", 0))
    assert seconds > gunicorn_conf.graceful_timeout + drain
    assert gunicorn_conf.graceful_timeout > 300 and gunicorn_conf.timeout > 300  # PROTOCOL.md: 5-minute calls


def test_nginx_in_front_never_cuts_a_long_call():
    conf = (ROOT / "config" / "nginx-wrapgate.conf").read_text()
    assert int(re.search(r"proxy_read_timeout (\d+)s", conf).group(1)) > 300
    assert int(re.search(r"client_max_body_size (\d+)m", conf).group(1)) >= 50
