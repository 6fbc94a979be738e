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

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

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
    back (through JSON) until ``lastPage``. ``call`` is :meth:`InProcessGateway.call`
    or alike. Fails the test on an error answer, ``connectionOffline``, the same
    page more than five times, or no last page within ``limit`` pages."""
    from . import driver

    summary = driver.ReadSummary()
    pages = list(driver.read(call, function, options, summary, max_pages=limit))
    if summary.problem is not None:
        raise AssertionError(f"{function}: {summary.problem} (errors: {summary.errors})")
    return pages


class InProcessGateway:
    """The gateway's own call path (validation, schemas, dispatch, result checks,
    error shaping) without HTTP, with the given plugins registered: fast tests
    of a connector's functions. ``settings`` override :func:`gateway.config.load`.
    """

    def __init__(
        self, plugins: dict[str, Any] | None = None, *, installed: Iterable[str] = (), **settings: Any
    ):
        """:param plugins: plugin objects (modules) by connector name, registered as they are.
        :param installed: names of installed entry points to load as ``wrapgate serve`` does.
        """
        from . import config, limits
        from .calls import Gateway
        from .plugins import Registry

        self.registry = registry = Registry()
        if installed:
            registry.load_entry_points(allow=list(installed))
        for name, plugin in (plugins or {}).items():
            registry.register(plugin, name)
        settings = {"system_tokens": ["in-process"], "limiter": "none", **settings}
        loaded = config.load({}, **settings)
        # limiter="local" counts the connections' slots in this process.
        self.gateway = Gateway(loaded, registry, limits.build(loaded, registry.notify))

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
    :param python: the interpreter (another virtualenv's, say); this one by default.
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
        python: str | None = None,
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
        self.python = python or sys.executable
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30) -> GatewayProcess:
        """Start gunicorn and poll ``/livez`` until a worker answers; on any failure
        (gunicorn exits, ``timeout`` passes, an interrupt) stop it before raising,
        so that no process is left behind."""
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.python, "-m", "gunicorn", "-c", self.config, *self.args, "gateway.app:create_app()"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(self._up, timeout, interval=0.1, what=f"gunicorn on {self.url}")
        except BaseException as exc:
            self.stop(timeout=5)  # nothing in flight to drain: do not wait out the graceful period
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"{exc}; its log:\n{self.log()}") from None
            raise
        return self

    def _up(self) -> bool:
        import requests

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/livez", timeout=2).status_code == 200
        except requests.RequestException:
            # Refused before the socket is bound; a read timeout while workers boot
            # and import the plugins: both mean "not yet", so poll again.
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
        assert self.proc is not None, "not started"
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid), "-f", "gunicorn"], capture_output=True, text=True
        )
        return [int(p) for p in out.stdout.split()]

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait (SIGKILL past ``timeout``); then kill whatever of its
        process group outlived the master (a worker, the limiter arbiter)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only its processes
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
