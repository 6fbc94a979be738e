"""The sql connector against a real PostgreSQL: every export type, every import mode."""

import datetime
import socket
import threading
import time

import pytest
import sqlalchemy as sa
from pg_server import PASSWORD, connection

from gateway.testing import export_pages

SCHEMA = """
CREATE TABLE customers (
    id integer PRIMARY KEY,
    email text UNIQUE NOT NULL,
    name text NOT NULL,
    balance numeric(12, 2),
    updated_at timestamptz NOT NULL,
    exported boolean NOT NULL DEFAULT false,
    uid uuid,
    photo bytea,
    birthday date,
    wait interval,
    tags text[]
);
"""


def seed(engine, count=25):
    with engine.begin() as conn:
        conn.exec_driver_sql(SCHEMA)
        conn.execute(
            sa.text(
                "INSERT INTO customers (id, email, name, balance, updated_at) "
                "SELECT i * 10, 'c' || i || '@example.com', 'Customer ' || i, i * 1.5, "
                "timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour' FROM generate_series(1, :n) i"
            ),
            {"n": count},
        )


def export_all(call, options):
    return export_pages(call, "sql.export", options)


def options(postgres, db, **configuration):
    return {
        "connection": connection(postgres, db),
        "configuration": {"table": "customers", "key": "id", **configuration},
    }


# -- ping ----------------------------------------------------------------------------


def test_ping_succeeds(call, postgres, pg_db):
    assert call("sql.ping", {"connection": connection(postgres, pg_db[0])}) == (200, {"statusCode": 200})


def test_ping_with_a_wrong_password_is_401_with_the_reason_and_no_password(call, postgres, pg_db):
    status, body = call("sql.ping", {"connection": connection(postgres, pg_db[0], password="wrong-Pass-123")})
    assert status == 200 and body["statusCode"] == 401
    (entry,) = body["errors"]
    assert entry["code"] == "unauthorized"
    assert "password authentication failed" in entry["message"]
    assert "wrong-Pass-123" not in str(body) and PASSWORD not in str(body)


def test_ping_of_a_closed_port_is_401_offline(call, postgres):
    conn = connection(postgres, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        conn["unencrypted"]["url"] = f"postgresql+psycopg://wrapgate@127.0.0.1:{port}/postgres"
        status, body = call("sql.ping", {"connection": conn})
    assert body["statusCode"] == 401 and body["errors"][0]["code"] == "connection_offline"


def test_ping_of_a_server_that_never_answers_gives_up_at_the_connect_timeout(call, postgres):
    # A socket that accepts connections and never speaks: only the connect timeout ends the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        conn = connection(postgres, "postgres", connectTimeout=1)
        conn["unencrypted"]["url"] = f"postgresql+psycopg://wrapgate@127.0.0.1:{silent.getsockname()[1]}/x"
        started = time.monotonic()
        status, body = call("sql.ping", {"connection": conn})
        elapsed = time.monotonic() - started
    assert body["statusCode"] == 401
    assert elapsed < 15  # bounded by connectTimeout, not by the 5-minute call deadline


def test_password_in_the_url_is_refused(call, postgres):
    conn = {"_id": "x", "unencrypted": {"url": postgres.url()}, "encrypted": {}}
    status, body = call("sql.ping", {"connection": conn})
    assert status == 422
    assert "put it in the encrypted section" in body["errors"][0]["message"]
    assert PASSWORD not in str(body)


def test_changed_password_gets_a_new_engine(call, postgres, pg_db):
    assert call("sql.ping", {"connection": connection(postgres, pg_db[0])})[1] == {"statusCode": 200}
    # Same URL, wrong password: a cached engine with the old password would still succeed.
    assert (
        call("sql.ping", {"connection": connection(postgres, pg_db[0], password="nope-nope")})[1][
            "statusCode"
        ]
        == 401
    )


# -- export ----------------------------------------------------------------------------------


def test_export_all_pages_by_key_to_the_last_page(call, postgres, pg_db):
    seed(pg_db[1])
    pages = export_all(call, options(postgres, pg_db[0], pageSize=10))
    assert [len(p["data"]) for p in pages] == [10, 10, 5]
    assert [r["id"] for p in pages for r in p["data"]] == [i * 10 for i in range(1, 26)]
    assert [p["lastPage"] for p in pages] == [False, False, True]


def test_export_is_keyset_not_offset(call, postgres, pg_db):
    seed(pg_db[1])
    opts = options(postgres, pg_db[0], pageSize=10)
    status, first = call("sql.export", opts)
    statements = []

    def capture(conn, cursor, statement, *args):
        statements.append(statement)

    # Every statement of every engine, the connector's included.
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    try:
        # Rows inserted before the cursor position while paging do not shift the pages.
        with pg_db[1].begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO customers (id, email, name, updated_at) "
                    "VALUES (5, 'new@example.com', 'New', now())"
                )
            )
        status, second = call("sql.export", dict(opts, state=first["state"]))
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", capture)
    assert [r["id"] for r in second["data"]] == [i * 10 for i in range(11, 21)]
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "customers" in s]
    assert selects and all("OFFSET" not in s.upper() and "LIMIT" in s.upper() for s in selects)


def test_export_delta_returns_rows_changed_since_last_execution(call, postgres, pg_db):
    seed(pg_db[1])
    since = datetime.datetime(2026, 1, 1, 20, 0, tzinfo=datetime.UTC)  # row 20's own time
    opts = dict(
        options(postgres, pg_db[0], pageSize=3, deltaLagSeconds=0),
        type="delta",
        delta={"dateField": "updated_at", "lastExecutionTime": int(since.timestamp() * 1000)},
    )
    pages = export_all(call, opts)
    # Inclusive: the row changed exactly at lastExecutionTime is exported too.
    assert [r["id"] for p in pages for r in p["data"]] == [200, 210, 220, 230, 240, 250]


def test_export_once_marks_rows_only_after_they_were_handed_over(call, postgres, pg_db):
    seed(pg_db[1], count=5)
    opts = dict(options(postgres, pg_db[0], pageSize=2), type="once", once={"booleanField": "exported"})

    def marked():
        with pg_db[1].connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM customers WHERE exported")).scalar()

    status, first = call("sql.export", opts)
    assert [r["id"] for r in first["data"]] == [10, 20] and not first["lastPage"]
    assert marked() == 0  # handed out, not yet acknowledged
    # The same page asked again is answered again (integrator.io retried).
    assert call("sql.export", opts)[1]["data"] == first["data"]
    second = call("sql.export", dict(opts, state=first["state"]))[1]
    assert [r["id"] for r in second["data"]] == [30, 40] and marked() == 2
    # Asking for the second page again is idempotent too.
    assert call("sql.export", dict(opts, state=first["state"]))[1]["data"] == second["data"]
    assert marked() == 2
    third = call("sql.export", dict(opts, state=second["state"]))[1]
    assert [r["id"] for r in third["data"]] == [50] and marked() == 4
    last = call("sql.export", dict(opts, state=third["state"]))[1]
    assert last == {"data": [], "lastPage": True} and marked() == 5
    # The next run has nothing left.
    assert call("sql.export", opts)[1] == {"data": [], "lastPage": True}


def test_export_test_honours_limit_in_one_page(call, postgres, pg_db):
    seed(pg_db[1])
    status, page = call("sql.export", dict(options(postgres, pg_db[0]), type="test", test={"limit": 3}))
    assert len(page["data"]) == 3 and page["lastPage"] is True


def test_export_columns_and_json_forms_of_database_types(call, postgres, pg_db):
    seed(pg_db[1], count=1)
    with pg_db[1].begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE customers SET uid = '12345678-1234-5678-1234-567812345678', photo = '\\x00ff', "
                "birthday = '1990-02-03', wait = interval '90 seconds', tags = ARRAY['a','b'], "
                "balance = 1234567890.12"
            )
        )
    cols = ["id", "balance", "updated_at", "uid", "photo", "birthday", "wait", "tags"]
    status, page = call("sql.export", options(postgres, pg_db[0], columns=cols))
    assert status == 200, page
    assert page["data"] == [
        {
            "id": 10,
            "balance": 1234567890.12,
            "updated_at": "2026-01-01T01:00:00+00:00",
            "uid": "12345678-1234-5678-1234-567812345678",
            "photo": "AP8=",
            "birthday": "1990-02-03",
            "wait": 90.0,
            "tags": ["a", "b"],
        }
    ]


def test_export_from_a_read_only_query(call, postgres, pg_db):
    seed(pg_db[1], count=6)
    opts = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {
            "query": "SELECT id, name FROM customers WHERE id > 20",
            "key": "id",
            "pageSize": 2,
        },
    }
    pages = export_all(call, opts)
    assert [r for p in pages for r in p["data"]] == [
        {"id": 30, "name": "Customer 3"},
        {"id": 40, "name": "Customer 4"},
        {"id": 50, "name": "Customer 5"},
        {"id": 60, "name": "Customer 6"},
    ]


def test_a_query_cannot_write(call, postgres, pg_db):
    seed(pg_db[1], count=3)
    for query in [
        "WITH d AS (DELETE FROM customers RETURNING id) SELECT id FROM d",
        "SELECT id FROM customers; DELETE FROM customers",
    ]:
        opts = {"connection": connection(postgres, pg_db[0]), "configuration": {"query": query, "key": "id"}}
        status, body = call("sql.export", opts)
        assert status == 422, body
    with pg_db[1].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 3


@pytest.mark.parametrize(
    "configuration, fragment",
    [
        ({"table": "customers; DROP TABLE customers", "key": "id"}, "does not exist"),
        ({"table": 'customers" --', "key": "id"}, "does not exist"),
        ({"table": "customers", "key": "id; DROP TABLE customers"}, "not a column"),
        ({"table": "customers", "key": "id", "columns": ["name FROM customers --"]}, "not a column"),
    ],
)
def test_identifiers_cannot_inject_sql(call, postgres, pg_db, configuration, fragment):
    seed(pg_db[1], count=2)
    status, body = call(
        "sql.export", {"connection": connection(postgres, pg_db[0]), "configuration": configuration}
    )
    assert status == 422 and fragment in body["errors"][0]["message"]
    if fragment == "not a column":
        assert body["errors"][0]["code"] == "invalid_configuration"
    with pg_db[1].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 2


def test_values_cannot_inject_sql(call, postgres, pg_db):
    seed(pg_db[1], count=1)
    evil = "x'); DROP TABLE customers; --"
    imp = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {"table": "customers"},
        "postMapData": [{"id": 1, "email": evil, "name": evil, "updated_at": "2026-01-01T00:00:00Z"}],
    }
    assert call("sql.import", imp)[1] == [{"statusCode": 200, "id": "1"}]
    with pg_db[1].connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM customers WHERE id = 1")).scalar() == evil


def test_bad_export_configuration_lists_every_problem(call, postgres, pg_db):
    status, body = call(
        "sql.export",
        {"connection": connection(postgres, pg_db[0]), "configuration": {"pageSize": 0, "colour": "red"}},
    )
    messages = [e["message"] for e in body["errors"]]
    assert status == 422
    assert any(m.startswith("configuration.key:") for m in messages)
    assert any(m.startswith("configuration.pageSize:") for m in messages)
    assert any(m.startswith("configuration.colour:") for m in messages)


# -- import ----------------------------------------------------------------------------------


def imp(postgres, db, records, **configuration):
    return {
        "connection": connection(postgres, db),
        "postMapData": records,
        "preMapData": records,
        "configuration": {"table": "customers", **configuration},
    }


def rows(engine):
    with engine.connect() as conn:
        return {r.id: r.name for r in conn.execute(sa.text("SELECT id, name FROM customers ORDER BY id"))}


def test_insert_one_bad_record_never_fails_its_neighbours(call, postgres, pg_db):
    seed(pg_db[1], count=1)  # id 10, c1@example.com
    now = "2026-02-01T00:00:00Z"
    records = [
        {"id": 1, "email": "a@x", "name": "A", "updated_at": now},
        {"id": 2, "email": "b@x", "updated_at": now},  # name is NOT NULL
        {"id": 3, "email": "c1@example.com", "name": "C", "updated_at": now},  # duplicate email
        {"id": 4, "email": "d@x", "name": "D", "updated_at": now, "colour": "red"},  # no such column
        {"id": 5, "email": "e@x", "name": "E", "updated_at": now},
        "not an object",
    ]
    status, results = call("sql.import", imp(postgres, pg_db[0], records))
    assert status == 200
    assert [r["statusCode"] for r in results] == [200, 422, 422, 422, 200, 422]
    assert results[0] == {"statusCode": 200, "id": "1"} and results[4] == {"statusCode": 200, "id": "5"}
    assert (
        results[1]["errors"][0]["code"] == "sqlstate_23502" and "name" in results[1]["errors"][0]["message"]
    )
    assert results[2]["errors"][0]["code"] == "sqlstate_23505"
    assert "colour: not a column" in results[3]["errors"][0]["message"]
    assert rows(pg_db[1]) == {1: "A", 5: "E", 10: "Customer 1"}


def test_insert_ignore_existing(call, postgres, pg_db):
    seed(pg_db[1], count=1)
    records = [
        {"id": 10, "email": "x@x", "name": "Again", "updated_at": "2026-02-01T00:00:00Z"},
        {"id": 11, "email": "y@x", "name": "New", "updated_at": "2026-02-01T00:00:00Z"},
    ]
    status, results = call("sql.import", imp(postgres, pg_db[0], records, ignoreExisting=True))
    assert results == [{"statusCode": 200, "id": "10", "ignored": True}, {"statusCode": 200, "id": "11"}]
    assert rows(pg_db[1]) == {10: "Customer 1", 11: "New"}


def test_update_by_key_missing_rows_422_or_ignored(call, postgres, pg_db):
    seed(pg_db[1], count=2)
    records = [{"email": "c1@example.com", "name": "Renamed"}, {"email": "nobody@x", "name": "Ghost"}]
    status, results = call(
        "sql.import", imp(postgres, pg_db[0], records, operation="update", keys=["email"], idColumn="id")
    )
    assert results[0] == {"statusCode": 200, "id": "10"}
    assert (
        results[1]["statusCode"] == 422
        and "no row with email='nobody@x'" in results[1]["errors"][0]["message"]
    )
    status, results = call(
        "sql.import", imp(postgres, pg_db[0], records, operation="update", keys=["email"], ignoreMissing=True)
    )
    assert results[1] == {"statusCode": 200, "id": "nobody@x", "ignored": True}
    assert rows(pg_db[1]) == {10: "Renamed", 20: "Customer 2"}


def test_upsert_inserts_and_updates_natively(call, postgres, pg_db):
    seed(pg_db[1], count=1)
    records = [
        {"id": 10, "email": "c1@example.com", "name": "Updated", "updated_at": "2026-02-01T00:00:00Z"},
        {"id": 99, "email": "n@x", "name": "Inserted", "updated_at": "2026-02-01T00:00:00Z"},
    ]
    status, results = call("sql.import", imp(postgres, pg_db[0], records, operation="upsert"))
    assert results == [{"statusCode": 200, "id": "10"}, {"statusCode": 200, "id": "99"}]
    assert rows(pg_db[1]) == {10: "Updated", 99: "Inserted"}


def test_lost_connection_answers_401_for_the_batch(call, postgres, pg_db):
    seed(pg_db[1], count=1)
    # The database itself drops the session when it sees the record named "kill".
    with pg_db[1].begin() as conn:
        conn.exec_driver_sql("""
            CREATE FUNCTION drop_session() RETURNS trigger AS $$
            BEGIN
              IF NEW.name = 'kill' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER drop_session BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION drop_session();
        """)
    now = "2026-02-01T00:00:00Z"
    records = [
        {"id": 1, "email": "a@x", "name": "A", "updated_at": now},
        {"id": 2, "email": "b@x", "updated_at": now},
        {"id": 3, "email": "k@x", "name": "kill", "updated_at": now},
        {"id": 4, "email": "d@x", "name": "D", "updated_at": now},
    ]
    status, results = call("sql.import", imp(postgres, pg_db[0], records))
    assert status == 200
    # Record 2 failed on its own; the others were in the lost transaction.
    assert [r["statusCode"] for r in results] == [401, 422, 401, 401]
    assert results[0]["errors"][0]["code"] == "connection_offline"
    assert rows(pg_db[1]) == {10: "Customer 1"}  # nothing of the batch was committed


def test_import_configuration_errors_are_422(call, postgres, pg_db):
    seed(pg_db[1], count=1)
    status, body = call("sql.import", imp(postgres, pg_db[0], [{}], operation="merge"))
    assert status == 422 and body["errors"][0]["message"].startswith("configuration.operation:")
    status, body = call("sql.import", imp(postgres, pg_db[0], [{}], table="nope"))
    assert status == 422 and "does not exist" in body["errors"][0]["message"]


def test_concurrent_exports_share_a_pool(call, postgres, pg_db):
    seed(pg_db[1])
    results = []
    opts = options(postgres, pg_db[0], pageSize=5)
    threads = [threading.Thread(target=lambda: results.append(call("sql.export", opts))) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 12 and all(s == 200 and len(p["data"]) == 5 for s, p in results)
