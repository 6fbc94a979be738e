import pytest
from api import ApiServer


@pytest.fixture
def api():
    with ApiServer() as server:
        yield server


@pytest.fixture(scope="session")
def call():
    """One call through the gateway's own call path (no HTTP), ``(status, answer)``."""
    from gateway.testing import InProcessGateway
    from wrapgate_rest import connector as plugin

    return InProcessGateway({"rest": plugin}, call_timeout=60).call
