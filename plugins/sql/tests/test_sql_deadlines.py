"""The call's deadline reaches a real PostgreSQL: a slow statement is stopped on the
server, a frozen server (accepts TCP, says nothing) is connection trouble, and the
connection it held is thrown away."""

import time

import pytest
import sqlalchemy as sa
from pg_server import FreezableProxy, connection

from gateway.testing import InProcessGateway, wait_until

DEADLINE = 6.0


@pytest.fixture(scope="module")
def short_call():
    from wrapgate_sql import connector as plugin

    return InProcessGateway({"sql": plugin}, call_timeout=DEADLINE).call


def sleeping(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"
            )
        ).scalar()


def test_a_statement_past_the_deadline_is_cancelled_on_the_server(short_call, postgres, pg_db):
    with pg_db[1].begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id integer PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    options = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {"query": "SELECT id, pg_sleep(60) AS s FROM t", "key": "id"},
    }
    started = time.monotonic()
    status, body = short_call("sql.export", options)
    assert status == 504 and body["errors"][0]["code"] == "deadline_exceeded", body
    assert time.monotonic() - started < DEADLINE + 10
    # The server stopped it (statement_timeout), not just the caller.
    wait_until(lambda: sleeping(pg_db[1]) == 0, 10, what="the server to drop the statement")


def test_a_frozen_database_is_connection_trouble_and_its_connection_is_discarded(short_call, postgres, pg_db):
    from wrapgate_sql import schemas
    from wrapgate_sql.connector import ENGINES

    with pg_db[1].begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id integer PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    proxy = FreezableProxy(postgres.port)
    try:
        conn = connection(postgres, pg_db[0])
        conn["unencrypted"]["url"] = conn["unencrypted"]["url"].replace(
            f":{postgres.port}/", f":{proxy.port}/"
        )
        options = {"connection": conn, "configuration": {"table": "t", "key": "id"}}
        assert short_call("sql.export", options)[1]["data"] == [{"id": 1}]  # a pooled connection now
        engine = ENGINES.get(schemas.Unencrypted().load(conn["unencrypted"]), conn["encrypted"])
        connects = []
        sa.event.listen(engine, "connect", lambda *a: connects.append(1))
        proxy.freeze()
        started = time.monotonic()
        status, body = short_call("sql.export", options)
        assert status == 200 and body["connectionOffline"] is True, body
        assert "stopped answering" in body["errors"][0]["message"]
        assert time.monotonic() - started < DEADLINE + 10
        status, body = short_call("sql.ping", {"connection": conn})
        assert body["statusCode"] == 401, body
        proxy.thaw()
        # The frozen connection was thrown away: the next call opens a new one and works.
        assert short_call("sql.export", options)[1]["data"] == [{"id": 1}]
        assert connects and engine.pool.checkedout() == 0
    finally:
        proxy.close()
