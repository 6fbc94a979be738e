"""wrapgate's conformance suite on the sql connector, against a real PostgreSQL.

A refused connection is a wrong password: ping answers
401 ``connection_offline``, export ``connectionOffline``, import 401 per record.
"""

import pytest
from pg_server import connection

from gateway.conformance import Conformance, Samples
from wrapgate_sql import demo


@pytest.fixture
def wrapgate_samples(postgres, pg_db):
    name, engine = pg_db
    demo.populate(engine, rows=12)
    return Samples(
        connection=connection(postgres, name),
        refused_connection=connection(postgres, name, password="not-the-password-123"),
        export_configuration={"table": "customers", "key": "id", "pageSize": 5},
        import_configuration={"table": "customers", "operation": "upsert", "keys": ["email"]},
        records=[
            {
                "id": 1001,
                "email": "ada@example.com",
                "name": "Ada",
                "updated_at": "2026-01-01T00:00:00",
                "exported": False,
            },
            {
                "id": 1002,
                "email": "bo@example.com",
                "name": "Bo",
                "updated_at": "2026-01-02T00:00:00",
                "exported": False,
            },
        ],
    )


class TestSqlConformance(Conformance):
    connector = "sql"
