"""Issue 10 against a real PostgreSQL: no row lost whatever the key, delta's boundary and
lag, values JSON cannot hold, layouts that change, exact import values, one error shape."""

import contextlib
import datetime
import time

import pytest
import sqlalchemy as sa
from pg_server import connection

from gateway.testing import export_pages


def run(engine, *statements):
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def export(postgres, db, **configuration):
    return {"connection": connection(postgres, db), "configuration": {"pageSize": 3, **configuration}}


def exported(call, options, limit=200):
    pages = export_pages(call, "sql.export", options, limit=limit)
    return [row for page in pages for row in page["data"]], pages


# -- keys of every sortable type ---------------------------------------------------

KEYS = {
    "timestamptz": "timestamptz '2026-03-01 00:00:00.000001+00' + n * interval '1 microsecond'",
    "timestamp": "timestamp '2026-03-01 00:00:00' + n * interval '1 second'",
    "date": "date '2026-03-01' + n",
    "uuid": "md5(n::text)::uuid",
    "numeric": "1234567890123456.000000000001 + n * 0.000000000001",
    "text": "'k' || lpad(n::text, 3, '0')",
    "bigint": "9007199254740993 + n",
}


@pytest.mark.parametrize("source", ["table", "query"])
@pytest.mark.parametrize("kind", sorted(KEYS))
def test_keys_of_every_sortable_type_page_exactly(call, postgres, pg_db, kind, source):
    run(
        pg_db[1],
        f"CREATE TABLE t (k {kind} PRIMARY KEY, n integer NOT NULL)",
        f"INSERT INTO t SELECT {KEYS[kind]}, n FROM generate_series(1, 10) n",
    )
    where = {"table": "t"} if source == "table" else {"query": "SELECT k, n FROM t"}
    rows, pages = exported(call, export(postgres, pg_db[0], key="k", **where))
    with pg_db[1].connect() as conn:
        order = [r.n for r in conn.execute(sa.text("SELECT n FROM t ORDER BY k"))]
    assert [r["n"] for r in rows] == order and len(order) == 10
    assert len(pages) == 4  # 3 + 3 + 3 + 1: every page boundary crossed
    if kind == "bigint":
        # Beyond 2^53 the position travels as text: JavaScript would round the number.
        assert pages[0]["state"]["after"] == [{"int": str(9007199254740993 + order[2])}]


# -- keys that are not unique or may be NULL -----------------------------------------------


def test_a_nullable_non_unique_key_pages_on_the_primary_key_too(call, postgres, pg_db):
    run(
        pg_db[1],
        "CREATE TABLE t (id integer PRIMARY KEY, k integer)",
        "INSERT INTO t SELECT i, CASE WHEN mod(i, 5) = 0 THEN NULL ELSE mod(i, 7) END FROM generate_series(1, 500) i",
    )
    rows, _ = exported(call, export(postgres, pg_db[0], table="t", key="k", pageSize=9), limit=100)
    assert sorted(r["id"] for r in rows) == list(range(1, 501))
    assert len(rows) == 500
    keys = [r["k"] for r in rows]
    assert keys[-100:] == [None] * 100  # NULLs last, none skipped


def test_a_non_unique_key_without_a_primary_key_is_refused_up_front(call, postgres, pg_db):
    run(pg_db[1], "CREATE TABLE t (k integer, v text)", "INSERT INTO t VALUES (1, 'a'), (1, 'b')")
    status, body = call("sql.export", export(postgres, pg_db[0], table="t", key="k"))
    assert status == 422 and "no primary key to break ties" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "rows, words",
    [
        ("SELECT i, i / 2 FROM generate_series(0, 9) i", "same value in several rows"),  # ties
        ("VALUES (1, 1), (2, NULL)", "is NULL in a row"),
    ],
)
def test_a_query_key_that_would_skip_rows_stops_the_export(call, postgres, pg_db, rows, words):
    run(pg_db[1], "CREATE TABLE t (id integer PRIMARY KEY, k integer)", f"INSERT INTO t {rows}")
    options = export(postgres, pg_db[0], query="SELECT id, k FROM t", key="k", pageSize=3)
    status, body = call("sql.export", options)
    assert status == 422 and words in body["errors"][0]["message"]


# -- delta ---------------------------------------------------------------------------------


def _delta(postgres, db, since_ms, lag):
    return dict(
        export(postgres, db, table="t", key="id", deltaLagSeconds=lag),
        type="delta",
        delta={"dateField": "changed", "lastExecutionTime": since_ms},
    )


def test_delta_lag_exports_rows_a_long_transaction_committed_after_the_previous_run(call, postgres, pg_db):
    run(pg_db[1], "CREATE TABLE t (id integer PRIMARY KEY, changed timestamptz NOT NULL)")
    run1 = time.time()
    # Run 1 found nothing; meanwhile a transaction that began a second before it commits.
    assert exported(call, _delta(postgres, pg_db[0], (run1 - 3600) * 1000, lag=3))[0] == []
    late = datetime.datetime.fromtimestamp(run1 - 1, datetime.UTC)
    with pg_db[1].begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (1, :t)"), {"t": late})
    time.sleep(3.5)  # the next run comes after the lag
    # Without the lag, run 2 starts at run 1's time and never sees the row.
    assert exported(call, _delta(postgres, pg_db[0], run1 * 1000, lag=0))[0] == []
    assert [r["id"] for r in exported(call, _delta(postgres, pg_db[0], run1 * 1000, lag=3))[0]] == [1]


def test_delta_rows_newer_than_the_lag_wait_and_pages_share_one_window(call, postgres, pg_db):
    run(
        pg_db[1],
        "CREATE TABLE t (id integer PRIMARY KEY, changed timestamptz NOT NULL)",
        "INSERT INTO t SELECT i, now() - interval '1 hour' FROM generate_series(1, 5) i",
        "INSERT INTO t VALUES (6, now())",
    )
    options = _delta(postgres, pg_db[0], (time.time() - 7200) * 1000, lag=600)
    status, first = call("sql.export", options)
    assert [r["id"] for r in first["data"]] == [1, 2, 3] and "until" in first["state"]
    # A row changed while paging, inside the run's window, is not exported twice.
    run(pg_db[1], "UPDATE t SET changed = now() - interval '30 minutes' WHERE id = 2")
    status, second = call("sql.export", dict(options, state=first["state"]))
    assert [r["id"] for r in second["data"]] == [4, 5] and second["lastPage"]


# -- values JSON cannot hold ---------------------------------------------------------------------


def test_nan_and_infinity_are_exported_as_documented_strings(call, postgres, pg_db):
    run(
        pg_db[1],
        "CREATE TABLE t (id numeric PRIMARY KEY, v numeric, f double precision, a numeric[])",
        "INSERT INTO t VALUES (1, 'NaN', 'NaN', '{1.5,NaN}'), (2, 'Infinity', '-Infinity', NULL),"
        " (3, '-Infinity', 'Infinity', NULL), (4, 1.5, 2.5, NULL), ('NaN', 0, 0, NULL)",
    )
    rows, _ = exported(call, export(postgres, pg_db[0], table="t", key="id", pageSize=2))
    assert rows == [
        {"id": 1, "v": "NaN", "f": "NaN", "a": [1.5, "NaN"]},
        {"id": 2, "v": "Infinity", "f": "-Infinity", "a": None},
        {"id": 3, "v": "-Infinity", "f": "Infinity", "a": None},
        {"id": 4, "v": 1.5, "f": 2.5, "a": None},
        {"id": "NaN", "v": 0, "f": 0.0, "a": None},  # a NaN key pages too (it sorts last)
    ]


# -- stale table layouts ------------------------------------------------------------------------


def test_a_changed_table_is_reflected_again_at_once(call, postgres, pg_db):
    run(
        pg_db[1],
        "CREATE TABLE t (id integer PRIMARY KEY, a text, b text)",
        "INSERT INTO t SELECT i, 'a', 'b' FROM generate_series(1, 6) i",
    )
    options = export(postgres, pg_db[0], table="t", key="id")
    status, first = call("sql.export", options)
    assert set(first["data"][0]) == {"id", "a", "b"}
    run(pg_db[1], "ALTER TABLE t ADD COLUMN c text DEFAULT 'c'", "ALTER TABLE t DROP COLUMN b")
    status, second = call("sql.export", dict(options, state=first["state"]))
    assert status == 200 and second["data"][0] == {"id": 4, "a": "a", "c": "c"}
    # A column picked by name that was dropped: the table is asked again, and the answer says so.
    run(pg_db[1], "ALTER TABLE t DROP COLUMN a")
    status, body = call("sql.export", export(postgres, pg_db[0], table="t", key="id", columns=["a"]))
    assert status == 422 and "'a' is not a column" in body["errors"][0]["message"]
    # An import naming a column added since the table was reflected writes it.
    run(pg_db[1], "ALTER TABLE t ADD COLUMN d integer")
    imp = {"connection": connection(postgres, pg_db[0]), "configuration": {"table": "t"}}
    assert call("sql.import", dict(imp, postMapData=[{"id": 9, "d": 4}]))[1] == [
        {"statusCode": 200, "id": "9"}
    ]


# -- no silent coercion on import --------------------------------------------------------------


def test_values_that_do_not_fit_exactly_are_refused_per_record(call, postgres, pg_db):
    run(
        pg_db[1],
        "CREATE TABLE t (id integer PRIMARY KEY, age integer, price numeric(10, 2), ok boolean, day date)",
    )
    records = [
        {"id": 1, "age": 1.5},
        {"id": 2, "age": True},
        {"id": 3, "price": 1.234},
        {"id": 4, "ok": 1},
        {"id": 5, "day": "2026-02-30"},
        {"id": 6, "age": 2.0, "price": "1.20", "ok": False, "day": "2026-02-28"},
    ]
    imp = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {"table": "t"},
        "postMapData": records,
    }
    status, results = call("sql.import", imp)
    assert [r["statusCode"] for r in results] == [422, 422, 422, 422, 422, 200]
    assert "age: 1.5 is not an integer" in results[0]["errors"][0]["message"]
    assert "age: true is not an integer" in results[1]["errors"][0]["message"]
    assert "at most 2 decimal places" in results[2]["errors"][0]["message"]
    with pg_db[1].connect() as conn:
        assert conn.execute(sa.text("SELECT id, age, price::text FROM t")).all() == [(6, 2, "1.20")]


# -- one error shape ----------------------------------------------------------------------------


def test_export_and_import_errors_share_one_shape_without_sql_or_parameters(call, postgres, pg_db):
    run(
        pg_db[1],
        "CREATE TABLE t (id integer PRIMARY KEY, email text UNIQUE)",
        "INSERT INTO t VALUES (10, 'taken@example.com')",
    )
    query = "SELECT id, 1 / (id - 10) AS x FROM t WHERE email <> 'secret-literal'"
    status, body = call("sql.export", export(postgres, pg_db[0], query=query, key="id"))
    (error,) = body["errors"]
    assert status == 422 and error == {"code": "sqlstate_22012", "message": "division by zero"}
    imp = {
        "connection": connection(postgres, pg_db[0]),
        "configuration": {"table": "t"},
        "postMapData": [{"id": 11, "email": "taken@example.com"}],
    }
    (result,) = call("sql.import", imp)[1]
    assert result["errors"] == [
        {
            "code": "sqlstate_23505",
            "message": 'duplicate key value violates unique constraint "t_email_key" '
            "(DETAIL: Key (email)=(taken@example.com) already exists.)",
        }
    ]


# -- query parsing ----------------------------------------------------------------------------------


def test_a_semicolon_in_a_literal_is_text_but_a_second_statement_is_refused(call, postgres, pg_db):
    run(pg_db[1], "CREATE TABLE t (id integer PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    ok = export(postgres, pg_db[0], query="SELECT id, 'a;b' AS s FROM t -- trailing; comment", key="id")
    assert call("sql.export", ok)[1]["data"] == [{"id": 1, "s": "a;b"}]
    for query, words in [
        ("SELECT id FROM t; DELETE FROM t", "exactly one statement"),
        ("DELETE FROM t RETURNING id", "must be a SELECT"),
    ]:
        status, body = call("sql.export", export(postgres, pg_db[0], query=query, key="id"))
        assert status == 422 and words in body["errors"][0]["message"]
    with pg_db[1].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 1


# -- batch imports ---------------------------------------------------------------------------------


@contextlib.contextmanager
def inserts():
    """The INSERT statements every engine sends meanwhile."""
    statements = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)


def imported(call, postgres, db, records, **configuration):
    body = {
        "connection": connection(postgres, db),
        "configuration": {"table": "t", **configuration},
        "postMapData": records,
    }
    with inserts() as statements:
        status, results = call("sql.import", body)
    assert status == 200, results
    return results, statements


def test_a_batch_is_written_in_few_statements_and_each_bad_record_gets_its_own_422(call, postgres, pg_db):
    run(pg_db[1], "CREATE TABLE t (id integer PRIMARY KEY, name text NOT NULL, email text UNIQUE)")
    records = [{"id": i, "name": f"n{i}", "email": f"e{i}@x"} for i in range(1000)]
    records[17]["name"] = None  # NOT NULL
    records[500]["email"] = "e3@x"  # clashes with record 3
    records[998]["id"] = 5  # clashes with record 5
    results, statements = imported(call, postgres, pg_db[0], records)
    bad = [i for i, r in enumerate(results) if r["statusCode"] != 200]
    assert len(results) == 1000 and bad == [17, 500, 998]
    assert results[17]["errors"][0]["code"] == "sqlstate_23502"
    assert results[500]["errors"][0]["code"] == results[998]["errors"][0]["code"] == "sqlstate_23505"
    assert results[0] == {"statusCode": 200, "id": "0"} and results[999] == {"statusCode": 200, "id": "999"}
    with pg_db[1].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 997
    # Bisection: about 2 log2(1000) statements per bad record, against 1,000 one at a time.
    assert len(statements) < 120, len(statements)


def test_a_clean_batch_upserts_in_one_statement_and_the_last_record_of_a_key_wins(call, postgres, pg_db):
    run(
        pg_db[1],
        "CREATE TABLE t (id integer PRIMARY KEY, name text NOT NULL)",
        "INSERT INTO t VALUES (1, 'old')",
    )
    records = [{"id": i, "name": f"n{i}"} for i in range(1, 301)] + [{"id": 1, "name": "last"}]
    results, statements = imported(call, postgres, pg_db[0], records, operation="upsert")
    assert [r["statusCode"] for r in results] == [200] * 301
    assert [r["id"] for r in results] == [str(i) for i in range(1, 301)] + ["1"]
    with pg_db[1].connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM t WHERE id = 1")).scalar() == "last"
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 300
    # A key twice in one statement fails it; bisection writes the halves in order.
    assert len(statements) < 40
