"""Test helpers for wrapgate and its connector plugins: a real gunicorn, real HTTP.

A plugin's tests start the gateway exactly as production runs it and call
their functions over the wire::

    from gateway.testing import GatewayProcess

    def test_ping(tmp_path):
        with GatewayProcess(tmp_path, env={"WRAPGATE_PLUGINS": "acme"}) as gateway:
            assert gateway.call("acme.ping", {"connection": {...}}).json() == {"statusCode": 200}

Needs ``requests`` (the ``test`` extra). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def post(
    url: str,
    body: Any = None,
    token: str | None = TOKEN,
    data: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 30,
    **kwargs: Any,
):
    """``POST <url>/function`` with a bearer token; the connection is closed afterwards."""
    import requests

    all_headers = {"Content-Type": "application/json", "Connection": "close"}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    if data is None and body is not None:
        data = json.dumps(body).encode()
    return requests.post(url + "/function", data=data, headers=all_headers, timeout=timeout, **kwargs)


def export_pages(
    call: Callable[[str, dict], tuple[int, Any]], function: str, options: dict, limit: int = 100
) -> list[dict]:
    """Every page of an export, asked for as integrator.io asks: ``state`` passed
    back until ``lastPage``. ``call`` is :meth:`InProcessGateway.call` or alike."""
    pages, state = [], None
    for _ in range(limit):
        status, page = call(function, dict(options, state=state))
        assert status == 200, page
        pages.append(page)
        if page["lastPage"]:
            return pages
        state = page.get("state")
    raise AssertionError(f"{function} gave no last page in {limit} pages")


class InProcessGateway:
    """The gateway's own call path (validation, schemas, dispatch, result checks,
    error shaping) without HTTP, with the given plugins registered: fast tests
    of a connector's functions. ``settings`` override :func:`gateway.config.load`.
    """

    def __init__(self, plugins: dict[str, Any], **settings: Any):
        from . import config
        from .calls import Gateway
        from .plugins import Registry

        registry = Registry()
        for name, plugin in plugins.items():
            registry.register(plugin, name)
        settings = {"system_tokens": ["in-process"], "limiter": "none", **settings}
        self.gateway = Gateway(config.load({}, **settings), registry)

    def call(self, function: str, options: dict, **extra: Any) -> tuple[int, Any]:
        """(status, parsed JSON answer) of one DIY call."""
        import orjson

        body = {"diy": True, "function": function, "options": options, **extra}
        answer = self.gateway.call(body, request_id="in-process")
        return answer.status, orjson.loads(answer.body)


class GatewayProcess:
    """``gunicorn -c python:gateway.gunicorn_conf "gateway.app:create_app()"`` on a free port.

    :param log_dir: where its output goes (``gunicorn-<port>.log``).
    :param env: extra environment (``WRAPGATE_*`` of the caller's are not inherited).
    :param pythonpath: folders put on its PYTHONPATH (plugins not installed, say).
    """

    def __init__(
        self,
        log_dir: Path,
        env: dict[str, str] | None = None,
        workers: int = 2,
        pythonpath: Iterable[str] = (),
        token: str = TOKEN,
        args: tuple[str, ...] = (),
        config: str = "python:gateway.gunicorn_conf",
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.log_path = Path(log_dir) / f"gunicorn-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WRAPGATE_")}
        paths = [str(p) for p in pythonpath]
        if paths:
            full_env["PYTHONPATH"] = os.pathsep.join(paths)
        full_env.update(
            {
                "WRAPGATE_SYSTEM_TOKEN": token,
                "WRAPGATE_BIND": f"127.0.0.1:{self.port}",
                "WRAPGATE_WORKERS": str(workers),
            }
        )
        full_env.update(env or {})
        self.env = full_env
        self.args = args
        self.config = config
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 30) -> GatewayProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", self.config, *self.args, "gateway.app:create_app()"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._up, timeout, what=f"gunicorn on {self.url}")
        return self

    def _up(self) -> bool:
        import requests

        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/livez", timeout=1).status_code == 200
        except requests.RequestException:  # not listening yet, or a worker still booting on a busy machine
            return False

    def call(self, function: str, options: dict, timeout: float = 60, **extra: Any):
        """One wrapper call as integrator.io makes it (DIY)."""
        body = {"diy": True, "type": "wrapper", "function": function, "options": options, **extra}
        return post(self.url, body, token=self.token, timeout=timeout)

    def log(self) -> str:
        if self._log:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def workers(self) -> list[int]:
        """Pids of the gunicorn workers (not of the master's other children, the limiter arbiter)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid), "-f", "gunicorn"], capture_output=True, text=True
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
