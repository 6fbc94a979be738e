"""Real processes for the tests: a gunicorn running the gateway, free ports, waits."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gateway.testing import TOKEN, GatewayProcess, free_port, post, wait_until  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
TESTKIT = Path(__file__).resolve().parent / "testkit"
ROTATED = "rotated-token-9876543210"

ENTRY_POINTS = """\
[wrapgate]
kit = wrapgate_testkit.kit
strict = wrapgate_testkit.strict
other = wrapgate_testkit.other
broken = wrapgate_testkit.broken
badsig = wrapgate_testkit.badsig
observer = wrapgate_testkit.observer
probe = wrapgate_testkit.probe
future = wrapgate_testkit.future
leaky = wrapgate_testkit.leaky
leakybroken = wrapgate_testkit.leakybroken
ref = wrapgate_testkit.reference
flow = wrapgate_testkit.flow
"""

#: A second distribution whose metadata pins a wrapgate this core is not.
OLDPIN_ENTRY_POINTS = """\
[wrapgate]
oldpin = wrapgate_testkit.oldpin
"""


def write_testkit_site(folder: Path) -> Path:
    """A distribution `wrapgate-testkit` visible to importlib.metadata on PYTHONPATH:
    the gateway finds its entry points exactly as it finds an installed package's."""
    info = folder / "wrapgate_testkit-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wrapgate-testkit\nVersion: 1.0\nRequires-Dist: wrapgate>=0.2,<0.3\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    old = folder / "wrapgate_oldpin-0.1.dist-info"
    old.mkdir(exist_ok=True)
    (old / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wrapgate-oldpin\nVersion: 0.1\nRequires-Dist: wrapgate<0.2,>=0.1\n"
    )
    (old / "entry_points.txt").write_text(OLDPIN_ENTRY_POINTS)
    return folder


FAULTYKIT = Path(__file__).resolve().parent / "faultykit"


def write_faulty_site(folder: Path) -> Path:
    """`wrapgate-faulty`, whose connector `faulty` (tests/faultykit) breaks the contract."""
    info = folder / "wrapgate_faulty-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wrapgate-faulty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[wrapgate]\nfaulty = wrapgate_faulty\n")
    return folder


class Gunicorn(GatewayProcess):
    """The gateway with the test plugins, started from config/gunicorn.conf.py as production is."""

    def __init__(self, site: Path, log_dir: Path, env: dict[str, str] | None = None, **kwargs):
        super().__init__(
            log_dir,
            env=env,
            pythonpath=[site, TESTKIT],
            config=str(ROOT / "config" / "gunicorn.conf.py"),
            **kwargs,
        )


class RedisServer:
    """A real redis-server on a loopback port, no persistence."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: scripts/test installs it")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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


def next_response(
    sock, buffered: bytes = b"", bodiless: bool = False
) -> tuple[bytes, dict[bytes, bytes], bytes, bytes]:
    """One response with a ``Content-Length`` (or none: a 1xx; ``bodiless`` for a HEAD's)
    off a kept-alive ``sock``, ``buffered`` being bytes already read: its status line,
    header fields, body, and the bytes read past it (the next responses')."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    fields = dict(line.split(b": ", 1) for line in lines)
    informational = status.startswith(b"HTTP/1.1 1")
    length = 0 if bodiless or informational else int(fields.get(b"Content-Length", 0))
    while len(rest) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return status, fields, rest[:length], rest[length:]
