"""``wrapgate serve``: the production gunicorn command, run in place of this process.

``wrapgate serve`` becomes ``python -m gunicorn -c python:gateway.gunicorn_conf
"gateway.app:create_app()"``, the very command a container runs (whose
``config/gunicorn.conf.py`` imports the same module), so the embedded default
and production are one server: no plugin is imported in the master, each
worker imports them after gevent has patched the standard library (a plugin
imported earlier holds the unpatched ``ssl``, and its HTTPS calls fail under
gevent). The listening address and worker count travel as ``WRAPGATE_BIND``
and ``WRAPGATE_WORKERS``, so :class:`gateway.config.Settings` stays their one
source.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

APP = "gateway.app:create_app()"
CONFIG = "python:gateway.gunicorn_conf"


def command(reload: bool = False) -> list[str]:
    """The gunicorn command line; ``reload`` restarts workers when a loaded module's file changes."""
    argv = [sys.executable, "-m", "gunicorn", "-c", CONFIG]
    if reload:
        argv.append("--reload")
    return [*argv, APP]


def run(bind: str, workers: int | None = None, reload: bool = False) -> NoReturn:
    os.environ["WRAPGATE_BIND"] = bind
    if workers:
        os.environ["WRAPGATE_WORKERS"] = str(workers)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = command(reload)
    os.execv(argv[0], argv)


def summary() -> str:
    """Which connectors load, and why not, from a separate process: importing a
    plugin here, before gunicorn's workers patch the standard library, is what
    must not happen."""
    import subprocess

    from . import serialize

    listing = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        connectors = serialize.loads(listing.stdout)["connectors"]
    except (ValueError, KeyError):
        return f"connectors could not be listed: {listing.stderr.strip()[-500:]}"
    if not connectors:
        return (
            "No connector is installed: the gateway starts, but every call answers "
            "invalid_function.\nAdd one with `pip install <package>` (or `pip install "
            "./plugins/sql` from a checkout) and start again."
        )
    return "\n".join(
        f"connector {c['name']}: " + ("ok" if c["loaded"] else f"FAILED: {c['error']}") for c in connectors
    )
