"""wrapgate's conformance suite on the rest connector, against the test API (tests/api.py)."""

import pytest
from api import TOKEN

from gateway.conformance import Conformance, Samples


@pytest.fixture
def wrapgate_samples(api):
    def connection(token):
        unencrypted = {"baseURI": api.url, "pingPath": "/me", "auth": {"type": "bearer"}, "retries": 0}
        return {"_id": "rest-1", "unencrypted": unencrypted, "encrypted": {"token": token}}

    return Samples(
        connection=connection(TOKEN),
        refused_connection=connection("refused-token-77"),
        export_configuration={
            "path": "/items-page",
            "recordsPath": "data.items",
            "pagination": {"type": "page", "pageSize": 10},
        },
        import_configuration={"path": "/items", "idPath": "data.id"},
        records=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
    )


class TestRestConformance(Conformance):
    connector = "rest"
