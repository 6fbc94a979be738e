"""What a limiter backend is: the protocol every backend (in-process, the
arbiter's client, Redis) implements, and the one error they raise. The backends
import this module; the package imports the backends: imports run one way."""

from __future__ import annotations

from typing import Protocol


class Lease(Protocol):
    def release(self) -> None: ...


class Backend(Protocol):
    name: str

    def acquire(self, key: str, level: int, wait: float) -> Lease | None:
        """A slot of ``key``, waiting at most ``wait`` seconds (None when none freed).
        Raises :class:`BackendDown` when the service that counts slots is unreachable."""


class BackendDown(Exception):
    """The backend cannot count slots right now (service down, socket gone)."""
