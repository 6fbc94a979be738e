"""The sql connector on SQLite (the embedded default): the same modes, another dialect."""

import pytest
import sqlalchemy as sa

from wrapgate_sql import demo


@pytest.fixture(autouse=True)
def allowed(tmp_path, monkeypatch):
    """The operator allows SQLite files under the test's own folder only."""
    monkeypatch.setenv("WRAPGATE_SQLITE_PATHS", str(tmp_path))


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "demo.sqlite"
    demo.create(str(path), rows=12)
    return path, sa.create_engine(f"sqlite:///{path}")


def opts(path, **configuration):
    return {
        "connection": {"_id": "lite", "unencrypted": {"url": f"sqlite:///{path}"}},
        "configuration": {"table": "customers", "key": "id", **configuration},
    }


def test_ping(call, sqlite_db):
    assert call("sql.ping", opts(sqlite_db[0])) == (200, {"statusCode": 200})


def test_a_missing_file_is_refused_and_never_created(call, tmp_path):
    for missing in (tmp_path / "no" / "such" / "dir.sqlite", tmp_path / "new.sqlite"):
        status, body = call("sql.ping", opts(missing))
        assert status == 422 and body["errors"][0]["code"] == "sqlite_file_refused", body
        assert "does not exist" in body["errors"][0]["message"]
        assert not missing.exists()


def test_export_pages_and_types(call, sqlite_db):
    path, _ = sqlite_db
    status, first = call("sql.export", opts(path, pageSize=5))
    assert status == 200 and [r["id"] for r in first["data"]] == [1, 2, 3, 4, 5]
    record = first["data"][0]
    assert record["updated_at"] == "2026-01-01T01:00:00" and isinstance(record["balance"], float)
    ids = [r["id"] for r in first["data"]]
    state = first["state"]
    while state:
        page = call("sql.export", dict(opts(path, pageSize=5), state=state))[1]
        ids += [r["id"] for r in page["data"]]
        state = page.get("state")
    assert ids == list(range(1, 13))


def test_once_marks_rows(call, sqlite_db):
    path, engine = sqlite_db
    o = dict(opts(path, pageSize=10), type="once", once={"booleanField": "exported"})
    first = call("sql.export", o)[1]
    second = call("sql.export", dict(o, state=first["state"]))[1]
    third = call("sql.export", dict(o, state=second["state"]))[1]
    assert [len(p["data"]) for p in (first, second, third)] == [10, 2, 0] and third["lastPage"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customers WHERE exported")).scalar() == 12


def test_query_cannot_write_on_sqlite(call, sqlite_db):
    path, engine = sqlite_db
    o = opts(path)
    o["configuration"] = {"query": "SELECT id FROM customers WHERE id < 3", "key": "id"}
    assert [r["id"] for r in call("sql.export", o)[1]["data"]] == [1, 2]
    # query_only is switched back off on the pooled connection: imports still write.
    imp = {
        "connection": o["connection"],
        "configuration": {"table": "customers", "operation": "update", "keys": ["id"]},
        "postMapData": [{"id": 1, "name": "Still writable"}],
    }
    assert call("sql.import", imp)[1] == [{"statusCode": 200, "id": "1"}]


def test_upsert_and_bad_records(call, sqlite_db):
    path, engine = sqlite_db
    records = [
        {
            "id": 1,
            "email": "customer1@example.com",
            "name": "Upserted",
            "updated_at": "2026-03-01 00:00:00",
            "exported": False,
        },
        {
            "id": 100,
            "email": "new@example.com",
            "name": "New",
            "updated_at": "2026-03-01 00:00:00",
            "exported": False,
        },
        {
            "id": 101,
            "email": "customer2@example.com",
            "name": "Dup",
            "updated_at": "2026-03-01 00:00:00",
            "exported": False,
        },
    ]
    status, results = call(
        "sql.import",
        {
            "connection": opts(path)["connection"],
            "postMapData": records,
            "configuration": {"table": "customers", "operation": "upsert"},
        },
    )
    assert [r["statusCode"] for r in results] == [200, 200, 422]
    assert "UNIQUE constraint failed" in results[2]["errors"][0]["message"]
    with engine.connect() as conn:
        names = dict(conn.execute(sa.text("SELECT id, name FROM customers WHERE id IN (1, 100, 101)")).all())
    assert names == {1: "Upserted", 100: "New"}


def test_files_outside_the_allowed_directories_are_refused(call, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "real.sqlite"
    demo.create(str(elsewhere), rows=1)  # exists, but not where the operator allows
    for url in (f"sqlite:///{elsewhere}", f"sqlite:///{elsewhere.parent}/created.sqlite", "sqlite://"):
        status, body = call("sql.ping", {"connection": {"_id": "x", "unencrypted": {"url": url}}})
        assert status == 422 and body["errors"][0]["code"] == "sqlite_file_refused", (url, body)
    assert not (elsewhere.parent / "created.sqlite").exists()
    # Options cannot reopen a file in another mode (mode=rwc would create it).
    status, body = call(
        "sql.ping",
        {
            "connection": {
                "_id": "x",
                "unencrypted": {"url": f"sqlite:///{elsewhere}", "options": {"mode": "rwc"}},
            }
        },
    )
    assert status == 422


def test_a_symlink_out_of_an_allowed_directory_is_refused(call, sqlite_db, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "x.sqlite"
    demo.create(str(outside), rows=1)
    link = sqlite_db[0].parent / "link.sqlite"
    link.symlink_to(outside)
    status, body = call("sql.ping", opts(link))
    assert status == 422 and "not under a directory" in body["errors"][0]["message"]


def test_nullable_non_unique_key_pages_on_the_primary_key(call, sqlite_db):
    path, engine = sqlite_db
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE customers SET city = NULL WHERE id % 4 = 0")
    o = opts(path, key="city", pageSize=2)
    ids, state = [], None
    for _ in range(20):
        page = call("sql.export", dict(o, state=state))[1]
        ids += [r["id"] for r in page["data"]]
        state = page.get("state")
        if page["lastPage"]:
            break
    assert sorted(ids) == list(range(1, 13)) and len(ids) == 12


def test_strict_values_bisected_batches_and_error_codes(call, sqlite_db):
    path, engine = sqlite_db
    now = "2026-03-01T00:00:00"
    records = [
        {"id": 200 + i, "email": f"b{i}@x", "name": f"B{i}", "updated_at": now, "exported": False}
        for i in range(40)
    ]
    records[3]["exported"] = 1  # not a boolean
    records[7]["balance"] = 1.005  # numeric(12, 2)
    records[20]["email"] = "customer1@example.com"  # UNIQUE
    status, results = call(
        "sql.import",
        {
            "connection": opts(path)["connection"],
            "postMapData": records,
            "configuration": {"table": "customers"},
        },
    )
    assert [i for i, r in enumerate(results) if r["statusCode"] != 200] == [3, 7, 20]
    assert results[20]["errors"][0]["code"] == "sqlite_constraint_unique"
    assert "UNIQUE constraint failed: customers.email" in results[20]["errors"][0]["message"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customers WHERE id >= 200")).scalar() == 37
