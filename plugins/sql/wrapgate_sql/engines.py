"""Engines for connections, and what database errors mean.

The connector keeps one pooled engine per distinct connection
(:class:`gateway.resources.PerConnection`): a changed password gets a new
engine, the least recently used are disposed. Nothing here logs the URL with
its password.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError

from gateway.errors import ConnectionOffline, CredentialsRefused

log = logging.getLogger("wrapgate_sql.engines")

# SQLSTATEs of refused credentials (PostgreSQL: invalid_password,
# invalid_authorization_specification); anything else that fails a connect is "offline".
CREDENTIAL_STATES = {"28P01", "28000"}


def url_of(unencrypted: Mapping[str, Any], encrypted: Mapping[str, Any]) -> URL:
    password = (encrypted or {}).get("password")
    if "url" in unencrypted:
        url = make_url(unencrypted["url"])
        if password:
            url = url.set(password=password)
    else:
        dialect = unencrypted["dialect"]
        driver = unencrypted.get("driver")
        url = URL.create(
            f"{dialect}+{driver}" if driver else dialect,
            username=unencrypted.get("user"),
            password=password,
            host=unencrypted.get("host"),
            port=unencrypted.get("port"),
            database=unencrypted.get("database"),
        )
    if unencrypted.get("options"):
        url = url.update_query_dict({k: str(v) for k, v in unencrypted["options"].items()})
    return url


def create_engine(unencrypted: Mapping[str, Any], encrypted: Mapping[str, Any]) -> Engine:
    return _create(url_of(unencrypted, encrypted), unencrypted)


def _create(url: URL, unencrypted: Mapping[str, Any]) -> Engine:
    timeout = unencrypted.get("connectTimeout", 5)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    connect_args: dict[str, Any] = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        connect_args["timeout"] = timeout  # waiting on a locked database
        connect_args["check_same_thread"] = False
    else:
        # Calls beyond the pool wait their turn for a connection (a queue, not a failure).
        kwargs.update(
            pool_size=unencrypted.get("poolSize", 5), max_overflow=0, pool_timeout=120, pool_recycle=1800
        )
        if backend == "postgresql":
            connect_args["connect_timeout"] = timeout
        elif backend in ("mysql", "mariadb"):
            connect_args["connect_timeout"] = timeout
    return sa.create_engine(url, connect_args=connect_args, **kwargs)


def reason(exc: BaseException) -> str:
    """A connection failure's reason: libpq puts the server's own words after the
    address ("connection to server at ... failed: FATAL: ..."); keep those."""
    text = first_line(exc)
    marker = "failed: "
    return text[text.rindex(marker) + len(marker) :].strip() if marker in text else text


def first_line(exc: BaseException) -> str:
    """The database's own reason, without SQLAlchemy's statement and parameter dump."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0].strip()


# How drivers word refused credentials when they give no SQLSTATE (libpq reports
# connection-time failures as text only; MySQL's 1045 is "Access denied").
CREDENTIAL_WORDS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "access denied for user",
    "no pg_hba.conf entry",
)


def connection_failure(exc: DBAPIError) -> Exception | None:
    """The gateway error for a failure to reach or stay connected to the database, or None
    when ``exc`` is about the statement (a bad record, a constraint)."""
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    text = str(getattr(exc, "orig", exc)).lower()
    if state in CREDENTIAL_STATES or (state is None and any(w in text for w in CREDENTIAL_WORDS)):
        return CredentialsRefused(reason(exc))
    if exc.connection_invalidated or (isinstance(exc, OperationalError) and _is_connection_error(exc)):
        return ConnectionOffline(reason(exc))
    return None


def _is_connection_error(exc: OperationalError) -> bool:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if state is None:
        # No SQLSTATE: the driver failed before the server answered (refused, timed out,
        # unknown host), except SQLite, whose errors are all local and about the statement
        # unless the file cannot be opened.
        return "unable to open database file" in str(exc.orig) or not _is_sqlite(exc)
    return state.startswith("08") or state.startswith("57P")  # connection exception, shutdown


def _is_sqlite(exc: DBAPIError) -> bool:
    return type(exc.orig).__module__.startswith("sqlite3")


# Seconds a reflected table is trusted before the database is asked again, so that
# a column added to a table is seen without restarting the gateway.
REFLECTION_TTL = 60.0
_tables: weakref.WeakKeyDictionary[Engine, dict] = weakref.WeakKeyDictionary()
_tables_lock = threading.Lock()


def reflect(conn: sa.Connection, table: str, schema: str | None) -> sa.Table:
    """The table as the database describes it; every identifier used later comes from it,
    so a name that is not a real column never reaches SQL."""
    engine = conn.engine
    key = (schema, table)
    now = time.monotonic()
    with _tables_lock:
        cached = _tables.get(engine, {}).get(key)
    if cached and now - cached[0] < REFLECTION_TTL:
        return cached[1]
    try:
        # On the call's own connection: asking the pool for a second one could wait
        # forever when every pooled connection is held by a call doing the same.
        reflected = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=conn)
    except NoSuchTableError:
        raise LookupError(f"table {(schema + '.') if schema else ''}{table} does not exist") from None
    with _tables_lock:
        _tables.setdefault(engine, {})[key] = (now, reflected)
    return reflected
