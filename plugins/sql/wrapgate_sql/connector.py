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

from sqlalchemy.exc import DBAPIError, StatementError

from gateway import hookimpl
from gateway.errors import ConnectionOffline, DeadlineExceeded, InvalidConfiguration
from gateway.resources import PerConnection

from . import schemas
from .engines import create_engine, problem, reason
from .export import export_page
from .imports import import_batch
from .session import session

# At most 64 engines; the least recently used is disposed (its pooled connections closed).
#: The plugin contract this connector is written against (gateway.CONTRACT_VERSION).
WRAPGATE_CONTRACT = 1

ENGINES = PerConnection(create_engine, dispose=lambda engine: engine.dispose(), capacity=64)


@hookimpl
def wrapgate_connection_schemas():
    return {"unencrypted": schemas.Unencrypted(), "encrypted": schemas.Encrypted()}


@hookimpl
def wrapgate_configuration_schema(function):
    return schemas.ImportConfiguration() if function == "import" else schemas.ExportConfiguration()


@hookimpl
def wrapgate_ping(unencrypted, encrypted, context):
    engine = ENGINES.get(unencrypted, encrypted)
    try:
        # The session's first statement is the ping (session.py).
        with session(engine, context):
            pass
    except DBAPIError as exc:
        # Any failure to run it means the connection does not work: ping answers 401.
        raise ConnectionOffline(reason(exc)) from None
    except DeadlineExceeded as exc:
        raise ConnectionOffline(exc.message) from None


@hookimpl
def wrapgate_export(unencrypted, encrypted, configuration, type, delta, once, test, state, context):
    engine = ENGINES.get(unencrypted, encrypted)
    try:
        return export_page(engine, configuration, type, delta, once, test, state, context)
    except LookupError as exc:
        raise InvalidConfiguration(str(exc)) from None
    except (DBAPIError, StatementError) as exc:
        raise problem(exc) from None


@hookimpl
def wrapgate_import(unencrypted, encrypted, configuration, postMapData, context):
    engine = ENGINES.get(unencrypted, encrypted)
    try:
        return import_batch(engine, configuration, postMapData, context)
    except LookupError as exc:
        raise InvalidConfiguration(str(exc)) from None
    except (DBAPIError, StatementError) as exc:
        raise problem(exc) from None
