import sys

import pytest
from support import ROTATED, Gunicorn, write_testkit_site

# Fixtures that start processes (gunicorn, redis-server, node): tests using them are `slow`.
PROCESSES = frozenset(("gateway", "start_gateway", "redis_server", "peer", "ours"))


def pytest_collection_modifyitems(items):
    for item in items:
        if PROCESSES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


GATEWAY_CONFIG = f"""
system_tokens = ["{ROTATED}"]
call_timeout = 2.0
[aliases]
legacyPing = "kit.ping"
[connector_ids]
"app-1" = ["kit"]
"app-2" = ["ref", "flow"]
"""


@pytest.fixture(scope="session")
def testkit_site(tmp_path_factory):
    """The test plugins, published on the real entry-point group; also importable here."""
    site = write_testkit_site(tmp_path_factory.mktemp("site"))
    # The plugins themselves are importable through pytest's pythonpath; the
    # metadata that publishes their entry points is made here, in a fresh folder.
    if str(site) not in sys.path:
        sys.path.insert(0, str(site))
    return site


@pytest.fixture(scope="session")
def gateway_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "gateway.toml"
    path.write_text(GATEWAY_CONFIG)
    return path


@pytest.fixture(scope="session")
def gateway(testkit_site, gateway_config, tmp_path_factory):
    """One real gunicorn (2 gevent workers) serving the test plugins, for the whole session."""
    server = Gunicorn(
        testkit_site, tmp_path_factory.mktemp("logs"), env={"WRAPGATE_CONFIG": str(gateway_config)}
    )
    with server:
        yield server


@pytest.fixture
def start_gateway(testkit_site, tmp_path):
    """Start further gunicorns with their own environment; all are stopped after the test."""
    started = []

    def start(env=None, **kwargs):
        server = Gunicorn(testkit_site, tmp_path, env=env, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from support import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
