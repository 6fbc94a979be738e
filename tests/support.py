"""Real processes for the tests: a gunicorn running the gateway, free ports, waits."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TESTKIT = Path(__file__).resolve().parent / "testkit"
TOKEN = "test-token-0123456789"
ROTATED = "rotated-token-9876543210"

ENTRY_POINTS = """\
[stackgate]
kit = stackgate_testkit.kit
strict = stackgate_testkit.strict
other = stackgate_testkit.other
broken = stackgate_testkit.broken
badsig = stackgate_testkit.badsig
observer = stackgate_testkit.observer
probe = stackgate_testkit.probe
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_testkit_site(folder: Path) -> Path:
    """A distribution `stackgate-testkit` visible to importlib.metadata on PYTHONPATH:
    the gateway finds its entry points exactly as it finds an installed package's."""
    info = folder / "stackgate_testkit-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stackgate-testkit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


class Gunicorn:
    """`gunicorn -c config/gunicorn.conf.py gateway.app:create_app()`, as production runs it."""

    def __init__(self, site: Path, log_dir: Path, env: dict[str, str] | None = None,
                 workers: int = 2, port: int | None = None, args: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"gunicorn-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("STACKGATE_")}
        full_env.update({
            "PYTHONPATH": os.pathsep.join([str(site), str(TESTKIT)]),
            "STACKGATE_SYSTEM_TOKEN": TOKEN,
            "STACKGATE_BIND": f"127.0.0.1:{self.port}",
            "STACKGATE_WORKERS": str(workers),
        })
        full_env.update(env or {})
        self.env = full_env
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Gunicorn":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "config" / "gunicorn.conf.py"),
             *self.args, "gateway.app:create_app()"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(self._up, timeout, what=f"gunicorn on {self.url}")
        return self

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/livez", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "_log"):
            self._log.close()
        return self.proc.returncode if self.proc else None

    def __enter__(self) -> "Gunicorn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def post(url: str, body=None, token: str | None = TOKEN, data: bytes | None = None,
         headers: dict | None = None, **kwargs) -> requests.Response:
    all_headers = {"Content-Type": "application/json"}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    if data is None and body is not None:
        import json
        data = json.dumps(body).encode()
    return requests.post(url + "/function", data=data, headers=all_headers, timeout=kwargs.pop("timeout", 30),
                         **kwargs)


@contextlib.contextmanager
def env_vars(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RedisServer:
    """A real redis-server on a loopback port, no persistence."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        import shutil
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: scripts/test installs it")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        client = redis.Redis.from_url(self.url)

        def up():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False
        wait_until(up, 15, what="redis-server")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
