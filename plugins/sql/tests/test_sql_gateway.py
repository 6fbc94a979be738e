"""The sql connector through a real gunicorn: discovered by its entry point, called over HTTP."""

import json
import subprocess
import sys
import time

import pytest
from pg_server import FreezableProxy, connection

from gateway.testing import GatewayProcess


@pytest.fixture
def gateway(tmp_path):
    with GatewayProcess(tmp_path, env={"WRAPGATE_PLUGINS": "sql"}) as server:
        yield server


def test_export_pages_until_last_page_over_http(gateway, postgres, pg_db):
    name, engine = pg_db
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2), placed timestamptz)"
        )
        conn.exec_driver_sql(
            "INSERT INTO orders SELECT i, i * 2.5, '2026-05-01'::timestamptz + i * interval '1 day' "
            "FROM generate_series(1, 2500) i"
        )
    options = {
        "connection": connection(postgres, name),
        "configuration": {"table": "orders", "key": "id", "pageSize": 1000},
    }
    ids, state, calls = [], None, 0
    while True:
        calls += 1
        r = gateway.call("sql.export", dict(options, state=state))
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [row["id"] for row in page["data"]]
        if page["lastPage"]:
            break
        state = page["state"]
    assert calls == 3 and ids == list(range(1, 2501))
    assert '"total":2.50' in gateway.call("sql.export", options).text  # exact decimal


def test_import_over_http(gateway, postgres, pg_db):
    name, engine = pg_db
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (sku text PRIMARY KEY, qty integer NOT NULL)")
    records = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": None}, {"sku": "C", "qty": 3}]
    r = gateway.call(
        "sql.import",
        {
            "connection": connection(postgres, name),
            "postMapData": records,
            "configuration": {"table": "items", "operation": "upsert"},
        },
    )
    assert [e["statusCode"] for e in r.json()] == [200, 422, 200]
    assert r.json()[0] == {"statusCode": 200, "id": "A"}


def test_wrong_password_ping_over_http_never_leaks_it(gateway, postgres, pg_db):
    r = gateway.call("sql.ping", {"connection": connection(postgres, pg_db[0], password="Leaky-Secret-99")})
    assert r.json()["statusCode"] == 401
    assert "Leaky-Secret-99" not in r.text and "Leaky-Secret-99" not in gateway.log()


def test_plugins_lists_both_bundled_connectors():
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "plugins", "--json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "WRAPGATE_PLUGINS": "sql,rest"},
    )
    rest, sql = json.loads(out.stdout)["connectors"]
    assert sql["package"] == "wrapgate-sql" and sql["functions"] == ["sql.export", "sql.import", "sql.ping"]
    assert rest["package"] == "wrapgate-rest" and rest["functions"] == [
        "rest.export",
        "rest.import",
        "rest.ping",
    ]
    assert out.returncode == 0


def test_a_frozen_database_under_gevent_is_connection_trouble_then_recovers(tmp_path, postgres, pg_db):
    """The production worker (gevent): the watchdog is a greenlet, psycopg waits cooperatively."""
    with pg_db[1].begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id integer PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    proxy = FreezableProxy(postgres.port)
    env = {"WRAPGATE_PLUGINS": "sql", "WRAPGATE_CALL_TIMEOUT": "4"}
    try:
        with GatewayProcess(tmp_path, env=env, workers=1) as server:
            conn = connection(postgres, pg_db[0])
            conn["unencrypted"]["url"] = conn["unencrypted"]["url"].replace(
                f":{postgres.port}/", f":{proxy.port}/"
            )
            options = {"connection": conn, "configuration": {"table": "t", "key": "id"}}
            assert server.call("sql.export", options).json()["data"] == [{"id": 1}]
            proxy.freeze()
            started = time.monotonic()
            r = server.call("sql.export", options, timeout=30)
            assert r.status_code == 200 and r.json()["connectionOffline"] is True, r.text
            assert time.monotonic() - started < 15
            proxy.thaw()
            # The cut connection was not pooled again: the next call works.
            r = server.call("sql.export", options)
            assert r.status_code == 200 and r.json()["data"] == [{"id": 1}], r.text
    finally:
        proxy.close()
