"""The ``sql`` connector's hooks: ``sql.ping``, ``sql.export``, ``sql.import``.

Connection::

    "unencrypted": {"url": "postgresql+psycopg://app@db.internal:5432/shop"}
                   or {"dialect": "postgresql", "driver": "psycopg", "host": ..., "port": ...,
                       "database": ..., "user": ..., "options": {"sslmode": "require"}}
    "encrypted":   {"password": "..."}

Export configuration: ``{"table": "customers", "key": "id", "pageSize": 1000}``
(or ``"query": "SELECT ..."`` instead of ``table``; ``columns`` to pick some).
Import configuration: ``{"table": "customers", "operation": "upsert", "keys": ["email"]}``.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from gateway import hookimpl
from gateway.errors import ConnectionOffline, InvalidConfiguration
from gateway.resources import PerConnection

from . import schemas
from .engines import connection_failure, create_engine, reason
from .export import export_page
from .imports import import_batch

# At most 64 engines; the least recently used is disposed (its pooled connections closed).
ENGINES = PerConnection(create_engine, dispose=lambda engine: engine.dispose(), capacity=64)


@hookimpl
def wrapgate_connection_schemas():
    return {"unencrypted": schemas.Unencrypted(), "encrypted": schemas.Encrypted()}


@hookimpl
def wrapgate_configuration_schema(function):
    return schemas.ImportConfiguration() if function == "import" else schemas.ExportConfiguration()


def _failure(exc: DBAPIError) -> Exception:
    return connection_failure(exc) or exc


@hookimpl
def wrapgate_ping(unencrypted, encrypted):
    import sqlalchemy as sa

    engine = ENGINES.get(unencrypted, encrypted)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except DBAPIError as exc:
        # Any failure to run SELECT 1 means the connection does not work: ping answers 401.
        raise connection_failure(exc) or ConnectionOffline(reason(exc)) from None


@hookimpl
def wrapgate_export(unencrypted, encrypted, configuration, type, delta, once, test, state):
    engine = ENGINES.get(unencrypted, encrypted)
    try:
        return export_page(engine, configuration, type, delta, once, test, state)
    except LookupError as exc:
        raise InvalidConfiguration(str(exc)) from None
    except DBAPIError as exc:
        raise _failure(exc) from None


@hookimpl
def wrapgate_import(unencrypted, encrypted, configuration, postMapData):
    engine = ENGINES.get(unencrypted, encrypted)
    try:
        return import_batch(engine, configuration, postMapData)
    except LookupError as exc:
        raise InvalidConfiguration(str(exc)) from None
    except DBAPIError as exc:
        raise _failure(exc) from None
