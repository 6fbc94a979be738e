"""Importing a plugin so that nothing it does at import ends the process.

A plugin's module runs arbitrary code when imported. ``SystemExit``,
``KeyboardInterrupt`` or any other ``BaseException`` from it, and
``os._exit()`` called during it, would end the gunicorn worker before it
serves a call, and the master would start the next one into the same fate:
an endless boot loop in which no connector serves. :func:`load` turns each
of these into :class:`ImportFailed`, an ordinary exception that the registry
reports as the connector's load error (calls to it answer
``connector_unavailable``) while every other plugin serves.

A crash below Python (a segfault in a C extension) cannot be caught in the
process; a fresh process per import would, at the cost of importing every
plugin twice on each worker boot.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

_lock = threading.Lock()


class ImportFailed(Exception):
    """A plugin's import ended with something other than a module."""

    def __init__(self, reason: str, cause: BaseException | None = None):
        super().__init__(reason)
        self.cause = cause


class _ExitCalled(Exception):
    def __init__(self, status: Any):
        super().__init__(f"os._exit({status!r}) called while importing")


@contextlib.contextmanager
def _exit_refused() -> Iterator[None]:
    # os._exit skips every handler: replace it while the plugin's module runs.
    with _lock:
        real = os._exit

        def refuse(status: int) -> NoReturn:
            raise _ExitCalled(status)

        os._exit = refuse
        try:
            yield
        finally:
            os._exit = real


def load(entry_point: Any) -> Any:
    """``entry_point.load()``; any way it fails is raised as :class:`ImportFailed`."""
    try:
        with _exit_refused():
            return entry_point.load()
    except BaseException as exc:  # a plugin may raise anything on import, even KeyboardInterrupt
        raise ImportFailed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, exc) from exc
