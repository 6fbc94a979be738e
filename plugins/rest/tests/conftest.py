import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from api import ApiServer  # noqa: E402


@pytest.fixture
def api():
    with ApiServer() as server:
        yield server


@pytest.fixture(scope="session")
def rest_gateway():
    """The gateway's own call path (no HTTP to it) with the rest connector registered."""
    from gateway import config
    from gateway.calls import Gateway
    from gateway.plugins import Registry
    from stackgate_rest import connector

    registry = Registry()
    registry.register(connector, "rest")
    return Gateway(config.load({}, system_tokens=["t"], call_timeout=60, limiter="none"), registry)


@pytest.fixture
def call(rest_gateway):
    def call(function, options):
        import orjson
        answer = rest_gateway.call({"diy": True, "function": function, "options": options}, request_id="t")
        return answer.status, orjson.loads(answer.body)
    return call
