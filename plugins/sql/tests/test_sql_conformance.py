"""wrapgate's conformance suite on the sql connector, against SQLite (the embedded default).

A refused connection on SQLite is a file that cannot be opened: ping answers
401 ``connection_offline``, export ``connectionOffline``, import 401 per record.
"""

import pytest

from gateway.conformance import Conformance, Samples
from wrapgate_sql import demo


@pytest.fixture
def wrapgate_samples(tmp_path):
    path = tmp_path / "demo.sqlite"
    demo.create(str(path), rows=12)
    return Samples(
        connection={"_id": "lite", "unencrypted": {"url": f"sqlite:///{path}"}, "encrypted": {}},
        refused_connection={
            "_id": "lite",
            "unencrypted": {"url": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite'}"},
            "encrypted": {},
        },
        export_configuration={"table": "customers", "key": "id", "pageSize": 5},
        import_configuration={"table": "customers", "operation": "upsert", "keys": ["email"]},
        records=[
            {
                "email": "ada@example.com",
                "name": "Ada",
                "updated_at": "2026-01-01T00:00:00",
                "exported": False,
            },
            {"email": "bo@example.com", "name": "Bo", "updated_at": "2026-01-02T00:00:00", "exported": False},
        ],
    )


class TestSqlConformance(Conformance):
    connector = "sql"
