"""A real PostgreSQL on a loopback port for the sql connector's tests.

initdb and pg_ctl from the distribution's server package (scripts/test installs
it). PostgreSQL refuses to run as root, so as root the cluster belongs to the
`postgres` system user the package creates.
"""

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from gateway.testing import free_port

PASSWORD = "pg-Secret-4711"
USER = "wrapgate"


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install PostgreSQL's server package (scripts/test does)")
    return path


class Postgres:
    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(folder, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def run(self, *args):
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, cwd=self.folder)

    def start(self):
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self.run(
            _bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self.run(
            _bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        return self

    def stop(self):
        try:
            self.run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass

    def url(self, database="postgres", password=True):
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql+psycopg://{USER}{secret}@127.0.0.1:{self.port}/{database}"


def connection(postgres, database, password=PASSWORD, **extra):
    unencrypted = {"url": postgres.url(database, password=False), **extra}
    return {"_id": f"pg-{database}", "unencrypted": unencrypted, "encrypted": {"password": password}}


class FreezableProxy:
    """A TCP forwarder on a loopback port in front of the test PostgreSQL. ``freeze()``
    makes it a database that accepts TCP and stops answering: connections stay open,
    nothing more is forwarded either way."""

    def __init__(self, port):
        import socket
        import threading

        self.target = port
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, sink):
        import time

        while True:
            if self.frozen.is_set():
                time.sleep(0.05)
                continue
            try:
                source.settimeout(0.05)
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                for s in (source, sink):
                    s.close()
                return
            while self.frozen.is_set():
                time.sleep(0.05)  # a frozen server does not answer this (until thawed)
            try:
                sink.sendall(data)
            except OSError:
                for s in (source, sink):
                    s.close()
                return

    def freeze(self):
        self.frozen.set()

    def thaw(self):
        self.frozen.clear()

    def close(self):
        self.listener.close()
