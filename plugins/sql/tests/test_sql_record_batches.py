"""`update` and `insert` with ignoreExisting in batches, on PostgreSQL and SQLite.

Each record still gets its own answer, in order (matched or not, its id, its own
422), but a run of records is sent at once: on PostgreSQL one pipelined
``executemany`` (one round trip), on SQLite one savepoint for the run instead of
one per record. A failing run is bisected until each bad record stands alone.
"""

import contextlib
import datetime
import time

import psycopg
import pytest
import sqlalchemy as sa
from pg_server import FreezableProxy, connection

from gateway.testing import InProcessGateway, wait_until

TABLE = (
    "CREATE TABLE t (id integer PRIMARY KEY, email text UNIQUE NOT NULL, name text NOT NULL, score integer)"
)


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request, tmp_path, monkeypatch):
    """(the connection for the gateway, an engine to arrange and inspect) with table ``t``."""
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        name, engine = request.getfixturevalue("pg_db")
        conn = connection(postgres, name)
    else:
        monkeypatch.setenv("WRAPGATE_SQLITE_PATHS", str(tmp_path))
        path = tmp_path / "batches.sqlite"
        engine = sa.create_engine(f"sqlite:///{path}")
        conn = {"_id": "lite", "unencrypted": {"url": f"sqlite:///{path}"}}
    with engine.begin() as c:
        c.exec_driver_sql(TABLE)
    yield conn, engine
    engine.dispose()


def seed(engine, count):
    with engine.begin() as c:
        c.execute(
            sa.text("INSERT INTO t (id, email, name, score) VALUES (:id, :email, :name, 0)"),
            [{"id": i, "email": f"e{i}@x", "name": f"old{i}"} for i in range(1, count + 1)],
        )


def contents(engine):
    with engine.connect() as c:
        return {row[0]: tuple(row[1:]) for row in c.execute(sa.text("SELECT id, email, name, score FROM t"))}


def imported(call, db, records, **configuration):
    status, results = call(
        "sql.import",
        {"connection": db[0], "configuration": {"table": "t", **configuration}, "postMapData": records},
    )
    assert status == 200, results
    assert len(results) == len(records)
    return results


def codes(results):
    return [r["statusCode"] for r in results]


def error(result):
    assert result["statusCode"] == 422, result
    (only,) = result["errors"]
    return only["code"], only["message"]


NOT_NULL = {"postgresql": "sqlstate_23502", "sqlite": "sqlite_constraint_notnull"}
UNIQUE = {"postgresql": "sqlstate_23505", "sqlite": "sqlite_constraint_unique"}


def dialect(db):
    return "sqlite" if "sqlite" in db[0]["unencrypted"]["url"] else "postgresql"


# -- update ----------------------------------------------------------------------------------------


def test_update_batch_with_bad_records_keeps_order_and_each_bad_one_gets_its_own_error(call, db):
    seed(db[1], 200)
    records = [{"id": i, "name": f"new{i}", "score": i} for i in range(1, 201)]
    records[10]["name"] = None  # NOT NULL
    records[50]["email"] = "e3@x"  # the unique email of row 3
    records[90]["score"] = 1.5  # not an integer: refused before the database sees it
    records[120]["id"] = 9999  # no such row
    records[150] = "not an object"
    results = imported(call, db, records, operation="update")
    bad = [i for i, r in enumerate(results) if r["statusCode"] != 200]
    assert bad == [10, 50, 90, 120, 150]
    assert error(results[10])[0] == NOT_NULL[dialect(db)]
    assert error(results[50])[0] == UNIQUE[dialect(db)]
    assert error(results[90]) == (
        "invalid_record",
        "score: 1.5 is not an integer: values are stored exactly, never coerced",
    )
    assert error(results[120]) == ("invalid_record", "no row with id=9999")
    assert results[0] == {"statusCode": 200, "id": "1"} and results[199] == {"statusCode": 200, "id": "200"}
    rows = contents(db[1])
    for i in range(1, 201):
        expected = (f"e{i}@x", f"old{i}", 0) if i - 1 in bad else (f"e{i}@x", f"new{i}", i)
        assert rows[i] == expected, i
    assert 9999 not in rows


def test_update_of_missing_rows_is_422_or_ignored_with_ignore_missing(call, db):
    seed(db[1], 3)
    records = [
        {"email": "e2@x", "name": "two"},
        {"email": "nobody@x", "name": "ghost"},
        {"email": "e3@x", "name": "three"},
        {"email": "e1@x"},  # keys only: matched, nothing to change
        {"email": "none@x"},  # keys only, not there
    ]
    results = imported(call, db, records, operation="update", keys=["email"], idColumn="id")
    assert results[0] == {"statusCode": 200, "id": "2"} and results[2] == {"statusCode": 200, "id": "3"}
    assert error(results[1]) == ("invalid_record", "no row with email='nobody@x'")
    assert results[3] == {"statusCode": 200, "id": "1"}
    assert error(results[4]) == ("invalid_record", "no row with email='none@x'")

    records = [{"email": "e1@x", "name": "one"}, {"email": "nobody@x", "name": "ghost"}, {"email": "none@x"}]
    results = imported(call, db, records, operation="update", keys=["email"], ignoreMissing=True)
    assert results == [
        {"statusCode": 200, "id": "e1@x"},
        {"statusCode": 200, "id": "nobody@x", "ignored": True},
        {"statusCode": 200, "id": "none@x", "ignored": True},
    ]
    assert contents(db[1]) == {1: ("e1@x", "one", 0), 2: ("e2@x", "two", 0), 3: ("e3@x", "three", 0)}


def test_a_key_twice_in_an_update_batch_ends_with_the_last_record(call, db):
    seed(db[1], 2)
    records = [{"id": 1, "name": "first"}, {"id": 2, "name": "x"}, {"id": 1, "name": "last", "score": 7}]
    results = imported(call, db, records, operation="update")
    assert codes(results) == [200, 200, 200]
    assert contents(db[1])[1] == ("e1@x", "last", 7)


# -- insert with ignoreExisting --------------------------------------------------------------------


def test_ignore_existing_skips_rows_that_are_there_and_inserts_the_rest_in_order(call, db):
    seed(db[1], 3)
    records = [
        {"id": 2, "email": "again@x", "name": "again"},  # there: ignored, not changed
        {"id": 10, "email": "e10@x", "name": "ten"},
        {"id": 10, "email": "e10b@x", "name": "ten again"},  # there by now: ignored
        {"id": 11, "email": "e11@x", "name": None},  # NOT NULL: 422...
        {"id": 11, "email": "e11@x", "name": "eleven"},  # ...so this one is the first: inserted
        {"id": 12, "email": "e1@x", "name": "clash"},  # the unique email of row 1
        {"id": 13, "email": "e13@x", "name": "thirteen", "score": "x"},  # not an integer
        {"id": 14, "email": "e14@x", "name": "fourteen"},
    ]
    results = imported(call, db, records, ignoreExisting=True)
    assert results[0] == {"statusCode": 200, "id": "2", "ignored": True}
    assert results[1] == {"statusCode": 200, "id": "10"}
    assert results[2] == {"statusCode": 200, "id": "10", "ignored": True}
    assert error(results[3])[0] == NOT_NULL[dialect(db)]
    assert results[4] == {"statusCode": 200, "id": "11"}
    assert error(results[5])[0] == UNIQUE[dialect(db)]
    assert error(results[6])[1].startswith("score: 'x' is not an integer")
    assert results[7] == {"statusCode": 200, "id": "14"}
    assert contents(db[1]) == {
        1: ("e1@x", "old1", 0),
        2: ("e2@x", "old2", 0),
        3: ("e3@x", "old3", 0),
        10: ("e10@x", "ten", None),
        11: ("e11@x", "eleven", None),
        14: ("e14@x", "fourteen", None),
    }


def test_ignore_existing_by_other_keys_answers_the_inserted_rows_id(call, db):
    seed(db[1], 1)
    records = [{"id": 5, "email": "e1@x", "name": "dup"}, {"id": 6, "email": "e6@x", "name": "six"}]
    results = imported(call, db, records, ignoreExisting=True, keys=["email"], idColumn="id")
    assert results == [{"statusCode": 200, "id": "5", "ignored": True}, {"statusCode": 200, "id": "6"}]
    assert sorted(contents(db[1])) == [1, 6]


# -- batched: few statements, not one or three per record ------------------------------------------


@contextlib.contextmanager
def driver_calls(monkeypatch):
    """Every statement psycopg is asked to run (``executemany``: one entry, its pipeline)."""
    calls = []
    for name in ("execute", "executemany"):
        original = getattr(psycopg.Cursor, name)

        def counted(self, query, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, str(query)))
            return _original(self, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, name, counted)
    yield calls


@contextlib.contextmanager
def savepoints():
    """The SAVEPOINT statements SQLAlchemy sends meanwhile (one per record before batching)."""
    seen = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SAVEPOINT"):
            seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)


@pytest.mark.parametrize(
    "configuration", [{"operation": "update"}, {"ignoreExisting": True}], ids=["update", "ignoreExisting"]
)
def test_a_thousand_records_take_a_few_statements_and_bisection_finds_each_bad_one(
    call, db, monkeypatch, configuration
):
    updating = configuration.get("operation") == "update"
    seed(db[1], 1000 if updating else 500)  # ignoreExisting: the first half is there
    records = [{"id": i, "email": f"n{i}@x", "name": f"n{i}"} for i in range(1, 1001)]
    for i in (17, 600, 998):
        records[i]["name"] = None  # NOT NULL (record 17 of an ignoreExisting insert: there, ignored)
    # Connecting and reflecting the table first: they are not the batch's statements.
    assert codes(imported(call, db, [{"id": 1, "email": "e1@x", "name": "old1"}], **configuration)) == [200]
    with driver_calls(monkeypatch) as calls, savepoints() as saved:
        results = imported(call, db, records, **configuration)
    bad = [i for i, r in enumerate(results) if r["statusCode"] != 200]
    assert bad == ([17, 600, 998] if updating else [600, 998])
    assert all(error(results[i])[0] == NOT_NULL[dialect(db)] for i in bad)
    ignored = [i for i, r in enumerate(results) if r.get("ignored")]
    assert ignored == ([] if updating else list(range(500)))
    assert results[999] == {"statusCode": 200, "id": "1000"}
    # Bisection: about 2 log2(1000) savepoints per bad record; one per record unbatched.
    assert len(saved) < 80, len(saved)
    if dialect(db) == "postgresql":
        many = [q for name, q in calls if name == "executemany"]
        assert many and all("t" in q for q in many)
        # Each try of a run is one pipelined executemany (and its savepoint, and the savepoint's
        # rollback or release): about 2 log2(1000) tries per bad record; 3 calls per record unbatched.
        assert len(many) < 70, len(many)
        assert len(calls) < 3 * 70, len(calls)
    clean = [{"id": i, "email": f"m{i}@x", "name": f"m{i}"} for i in range(1, 1001)]
    with driver_calls(monkeypatch) as calls, savepoints() as saved:
        results = imported(call, db, clean, **configuration)
    assert len(saved) == 1
    if dialect(db) == "postgresql":
        assert len(calls) <= 6, calls  # the session's first statement, the savepoint, the run, its release


def test_values_the_driver_cannot_take_as_they_are_go_through_their_types_processing(call, postgres, pg_db):
    """A jsonb column's dict (SQLAlchemy's bind processing wraps it for psycopg), a uuid
    and an enum, updated and inserted with ignoreExisting through the pipelined path."""
    with pg_db[1].begin() as c:
        c.exec_driver_sql("CREATE TYPE mood AS ENUM ('ok', 'good')")
        c.exec_driver_sql("CREATE TABLE j (id integer PRIMARY KEY, doc jsonb, uid uuid, m mood)")
        c.exec_driver_sql("INSERT INTO j VALUES (1, '{}', NULL, 'ok')")
    uid = "6f1c2b4e-0a3d-4c5e-9f8a-1b2c3d4e5f60"
    body = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {"table": "j", "operation": "update"},
    }
    records = [{"id": 1, "doc": {"a": [1, 2]}, "uid": uid, "m": "good"}]
    assert call("sql.import", {**body, "postMapData": records}) == (200, [{"statusCode": 200, "id": "1"}])
    body["configuration"] = {"table": "j", "ignoreExisting": True}
    records = [{"id": 1, "doc": {"x": 1}}, {"id": 2, "doc": {"b": None}, "uid": uid, "m": "ok"}]
    status, results = call("sql.import", {**body, "postMapData": records})
    assert results == [{"statusCode": 200, "id": "1", "ignored": True}, {"statusCode": 200, "id": "2"}]
    with pg_db[1].connect() as c:
        rows = c.exec_driver_sql("SELECT id, doc, uid::text, m::text FROM j ORDER BY id").all()
    assert [tuple(r) for r in rows] == [(1, {"a": [1, 2]}, uid, "good"), (2, {"b": None}, uid, "ok")]


def test_timestamps_and_numerics_checked_on_their_fast_paths_still_refuse_what_does_not_fit(call, db):
    with db[1].begin() as c:
        c.exec_driver_sql("CREATE TABLE n (id integer PRIMARY KEY, price numeric(10, 2), at timestamp)")
    records = [
        {"id": 1, "price": 1.5, "at": "2026-02-01T10:00:00"},
        {"id": 2, "price": 3, "at": "2026-02-01 10:00:00.250"},
        {"id": 3, "price": 1e-7},
        {"id": 4, "price": True},
        {"id": 5, "at": "yesterday"},
        {"id": 6, "at": 1700000000},
        {"id": 7, "price": 12.25, "at": None},
    ]
    status, results = call(
        "sql.import", {"connection": db[0], "configuration": {"table": "n"}, "postMapData": records}
    )
    assert codes(results) == [200, 200, 422, 422, 422, 422, 200]
    assert "at most 2 decimal places" in error(results[2])[1]
    assert error(results[3])[1].startswith("price: true is not a number")
    assert error(results[4])[1] == "at: 'yesterday' is not a valid timestamp"
    assert "give it as text" in error(results[5])[1]
    with db[1].connect() as c:
        rows = c.exec_driver_sql("SELECT id, price, at FROM n ORDER BY id").all()
    # SQLite keeps the decimals as floats and the timestamps as text: compared as values.
    stored = [
        (i, float(p), None if a is None else datetime.datetime.fromisoformat(str(a))) for i, p, a in rows
    ]
    assert stored == [
        (1, 1.5, datetime.datetime(2026, 2, 1, 10)),
        (2, 3.0, datetime.datetime(2026, 2, 1, 10, 0, 0, 250000)),
        (7, 12.25, None),
    ]


# -- a run that cannot finish ----------------------------------------------------------------------

DEADLINE = 6.0


@pytest.fixture(scope="module")
def short_call():
    from wrapgate_sql import connector as plugin

    return InProcessGateway({"sql": plugin}, call_timeout=DEADLINE).call


def trigger(engine, body):
    with engine.begin() as c:
        c.exec_driver_sql(f"""
            CREATE FUNCTION on_update() RETURNS trigger AS $$
            BEGIN {body} RETURN NEW; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER on_update BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION on_update();
        """)


def test_a_connection_lost_in_a_pipelined_run_answers_401_for_every_record_not_already_refused(
    call, postgres, pg_db
):
    db = (connection(postgres, pg_db[0]), pg_db[1])
    with pg_db[1].begin() as c:
        c.exec_driver_sql(TABLE)
    seed(pg_db[1], 4)
    trigger(pg_db[1], "IF NEW.name = 'kill' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;")
    records = [
        {"id": 1, "name": "a"},
        {"id": 2, "score": 1.5},
        {"id": 3, "name": "kill"},
        {"id": 4, "name": "d"},
    ]
    results = imported(call, db, records, operation="update")
    assert codes(results) == [401, 422, 401, 401]
    assert results[0]["errors"][0]["code"] == "connection_offline"
    assert contents(pg_db[1]) == {i: (f"e{i}@x", f"old{i}", 0) for i in range(1, 5)}  # nothing committed
    assert codes(imported(call, db, records[:1], operation="update")) == [200]  # a new connection works


def test_a_pipelined_run_past_the_deadline_is_stopped_on_the_server(short_call, postgres, pg_db):
    with pg_db[1].begin() as c:
        c.exec_driver_sql(TABLE)
    seed(pg_db[1], 3)
    trigger(pg_db[1], "IF NEW.name = 'slow' THEN PERFORM pg_sleep(60); END IF;")
    records = [{"id": 1, "name": "a"}, {"id": 2, "name": "slow"}, {"id": 3, "name": "c"}]
    body = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {"table": "t", "operation": "update"},
        "postMapData": records,
    }
    started = time.monotonic()
    status, answer = short_call("sql.import", body)
    assert status == 504 and answer["errors"][0]["code"] == "deadline_exceeded", answer
    assert time.monotonic() - started < DEADLINE + 10

    def sleeping():
        with pg_db[1].connect() as c:
            query = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'UPDATE t %'"
            return c.execute(sa.text(query)).scalar()

    wait_until(lambda: sleeping() == 0, 10, what="the server to drop the statement")
    assert contents(pg_db[1])[1] == ("e1@x", "old1", 0)


def test_a_database_frozen_in_a_pipelined_run_is_connection_trouble_and_its_connection_discarded(
    short_call, postgres, pg_db
):
    with pg_db[1].begin() as c:
        c.exec_driver_sql(TABLE)
    seed(pg_db[1], 3)
    proxy = FreezableProxy(postgres.port)
    try:
        conn = connection(postgres, pg_db[0])
        conn["unencrypted"]["url"] = conn["unencrypted"]["url"].replace(
            f":{postgres.port}/", f":{proxy.port}/"
        )
        body = {"connection": conn, "configuration": {"table": "t", "operation": "update"}}
        records = [{"id": i, "name": f"new{i}"} for i in (1, 2, 3)]
        status, results = short_call("sql.import", {**body, "postMapData": records[:1]})
        assert codes(results) == [200]  # a pooled connection now, the table reflected
        proxy.freeze()
        started = time.monotonic()
        status, results = short_call("sql.import", {**body, "postMapData": records})
        assert status == 200 and codes(results) == [401, 401, 401], results
        assert "stopped answering" in results[0]["errors"][0]["message"]
        assert time.monotonic() - started < DEADLINE + 10
        proxy.thaw()
        status, results = short_call("sql.import", {**body, "postMapData": records})
        assert codes(results) == [200, 200, 200]
    finally:
        proxy.close()
    assert contents(pg_db[1]) == {i: (f"e{i}@x", f"new{i}", 0) for i in (1, 2, 3)}


@pytest.mark.parametrize(
    "configuration",
    [{}, {"operation": "upsert"}, {"operation": "update"}, {"ignoreExisting": True}],
    ids=["insert", "upsert", "update", "ignoreExisting"],
)
def test_bisection_logs_no_driver_warning_per_failed_try(call, postgres, pg_db, caplog, configuration):
    """psycopg's own pipeline logged "error ignored terminating ... pipeline aborted" (with
    the server's address) at each failed try of a bisection."""
    db = (connection(postgres, pg_db[0]), pg_db[1])
    with pg_db[1].begin() as c:
        c.exec_driver_sql(TABLE)
    updating = configuration.get("operation") == "update"
    seed(pg_db[1], 150 if updating else 50)  # the records' rows are there, or new
    records = [
        {"id": i, "email": f"n{i}@x", "name": None if i % 20 == 0 else f"n{i}"} for i in range(51, 151)
    ]
    with caplog.at_level("WARNING"):
        results = imported(call, db, records, **configuration)
    assert [i for i, r in enumerate(results) if r["statusCode"] != 200] == [
        i for i in range(100) if i % 20 == 9
    ]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")] == []


# SQLAlchemy warns when it reflects a type it does not know (pytest makes warnings errors).
@pytest.mark.filterwarnings("ignore:Did not recognize type")
def test_columns_of_types_sqlalchemy_does_not_know_still_take_their_text(call, postgres, pg_db):
    """A ``point`` (reflected without a type) has no cast: inserted only if its key is new,
    and updated, its text is read by the database as the column's type."""
    with pg_db[1].begin() as c:
        c.exec_driver_sql("CREATE TABLE p (id integer PRIMARY KEY, at point, r int4range)")
        c.exec_driver_sql("INSERT INTO p VALUES (1, '(0,0)', '[1,2)')")
    body = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {"table": "p", "ignoreExisting": True},
    }
    records = [{"id": 1, "at": "(5,5)"}, {"id": 2, "at": "(1.5,2)", "r": "[3,7)"}]
    status, results = call("sql.import", {**body, "postMapData": records})
    assert results == [{"statusCode": 200, "id": "1", "ignored": True}, {"statusCode": 200, "id": "2"}]
    body["configuration"] = {"table": "p", "operation": "update"}
    status, results = call("sql.import", {**body, "postMapData": [{"id": 1, "at": "(9,9)"}]})
    assert results == [{"statusCode": 200, "id": "1"}]
    with pg_db[1].connect() as c:
        rows = c.exec_driver_sql("SELECT id, at::text, r::text FROM p ORDER BY id").all()
    assert [tuple(r) for r in rows] == [(1, "(9,9)", "[1,2)"), (2, "(1.5,2)", "[3,7)")]
