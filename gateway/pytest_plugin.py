"""wrapgate's pytest plugin, registered on ``pytest11``: installed with the core, on in every run.

Fixtures:

- ``wrapgate_inprocess(plugins=None, installed=(), **settings)``: a
  :class:`gateway.testing.InProcessGateway`, the gateway's whole call path
  without HTTP; ``.call(wire_name, options)`` answers ``(status, json)``.
- ``wrapgate_gunicorn(env=None, **kwargs)``: a started
  :class:`gateway.testing.GatewayProcess` (a real gunicorn on a free loopback
  port), ready when returned and always stopped after the test.

Option ``--wrapgate-conformance NAME`` adds the conformance suite
(:mod:`gateway.conformance`) for the installed connector NAME to the run,
beside each ``conftest.py`` that defines the ``wrapgate_samples`` fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The suite's plain asserts explain their failures, as in the author's own tests.
pytest.register_assert_rewrite("gateway.conformance")

from .testing import GatewayProcess, InProcessGateway  # noqa: E402

_SAMPLES = re.compile(r"^\s*def\s+wrapgate_samples\s*\(", re.MULTILINE)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wrapgate")
    group.addoption(
        "--wrapgate-conformance",
        metavar="NAME",
        default=None,
        help="run wrapgate's conformance suite on the installed connector NAME "
        "(needs a wrapgate_samples fixture in a conftest.py)",
    )


@pytest.fixture
def wrapgate_inprocess() -> Callable[..., InProcessGateway]:
    def make(plugins: dict[str, Any] | None = None, **kwargs: Any) -> InProcessGateway:
        return InProcessGateway(plugins, **kwargs)

    return make


@pytest.fixture
def wrapgate_gunicorn(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(env: dict[str, str] | None = None, **kwargs: Any) -> GatewayProcess:
        server = GatewayProcess(tmp_path, env=env, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


class _ConformanceModule(pytest.Module):
    """The suite, collected as if it were a module beside the conftest that
    holds the samples, so that the conftest's fixtures reach it."""

    def _getobj(self) -> Any:
        from . import conformance

        class TestWrapgateConformance(conformance.Conformance):
            pass

        module = type(conformance)("wrapgate_conformance")
        module.TestWrapgateConformance = TestWrapgateConformance  # type: ignore[attr-defined]
        module.__file__ = conformance.__file__
        return module


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name != "conftest.py" or not parent.config.getoption("wrapgate_conformance"):
        return None
    if not _SAMPLES.search(file_path.read_text(errors="replace")):
        return None
    parent.config.stash[_FOUND] = True
    return _ConformanceModule.from_parent(parent, path=file_path, name="wrapgate-conformance")


_FOUND = pytest.StashKey[bool]()


def pytest_collection_finish(session: pytest.Session) -> None:
    name = session.config.getoption("wrapgate_conformance")
    if name and not session.config.stash.get(_FOUND, False):
        raise pytest.UsageError(
            f"--wrapgate-conformance {name}: no conftest.py among the collected folders defines "
            "the wrapgate_samples fixture (see gateway.conformance.Samples)"
        )
