"""Fixtures of the sql connector's tests: a real PostgreSQL, a database per test."""

import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg_server import Postgres


@pytest.fixture(scope="session")
def postgres():
    # Not under pytest's tmp folder: that one is private to root, and the server
    # runs as `postgres`.
    folder = Path(tempfile.mkdtemp(prefix="wrapgate-pg-"))
    server = Postgres(folder).start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_db(postgres, request):
    """A fresh database per test: its name, and an engine to arrange and inspect it."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")[:50]
    admin = sa.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(postgres.url(name))
    yield name, engine
    engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def call():
    """One call through the gateway's own call path (no HTTP), ``(status, answer)``."""
    from gateway.testing import InProcessGateway
    from wrapgate_sql import connector as plugin

    return InProcessGateway({"sql": plugin}, call_timeout=60).call
