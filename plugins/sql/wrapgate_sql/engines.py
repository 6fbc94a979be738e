"""Engines for connections, and what database errors mean.

The connector keeps one pooled engine per distinct connection
(:class:`gateway.resources.PerConnection`): a changed password gets a new
engine, the least recently used are disposed. Nothing here logs the URL with
its password.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError

from gateway.errors import ConnectionOffline, CredentialsRefused, DeadlineExceeded, GatewayError

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
    url = url_of(unencrypted, encrypted)
    if url.get_backend_name() == "sqlite":
        url = sqlite_url(url)
    return _create(url, unencrypted)


class SqliteFileRefused(GatewayError):
    """A SQLite file the operator did not allow, or one that does not exist."""

    code = "sqlite_file_refused"


SQLITE_PATHS = "WRAPGATE_SQLITE_PATHS"


def allowed_sqlite_dirs() -> list[str]:
    """Directories SQLite files may live in: ``WRAPGATE_SQLITE_PATHS`` (``os.pathsep``
    separated), else the demo's ``var`` directory of the working directory."""
    listed = [p for p in os.environ.get(SQLITE_PATHS, "").split(os.pathsep) if p.strip()]
    return [os.path.realpath(p.strip()) for p in (listed or ["var"])]


def sqlite_url(url: URL) -> URL:
    """The URL that opens an existing file read-write (``mode=rw``: never creates one),
    under an allowed directory; anything else is refused before SQLite sees it."""
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or url.query:
        raise SqliteFileRefused("a SQLite connection names a database file by its path, with no options")
    path = os.path.realpath(database)
    if not any(os.path.commonpath([path, folder]) == folder for folder in allowed_sqlite_dirs()):
        raise SqliteFileRefused(
            f"{database} is not under a directory the operator allows for SQLite files ({SQLITE_PATHS})"
        )
    if not os.path.isfile(path):
        raise SqliteFileRefused(
            f"{database} does not exist: the gateway opens SQLite files, never creates them"
        )
    from urllib.parse import quote

    return URL.create("sqlite", database=f"file:{quote(path)}", query={"mode": "rw", "uri": "true"})


def _create(url: URL, unencrypted: Mapping[str, Any]) -> Engine:
    timeout = unencrypted.get("connectTimeout", 5)
    # No pool_pre_ping: the session's first statement is the ping, under the call's
    # deadline and watchdog (see session.py); a pre-ping would hang on a frozen server.
    kwargs: dict[str, Any] = {}
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
        if backend in ("postgresql", "mysql", "mariadb"):
            connect_args["connect_timeout"] = timeout
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    if backend == "postgresql":
        sa.event.listen(engine, "do_connect", _within_budget)
    return engine


#: Seconds a call may still spend connecting (set by the session from its deadline).
connect_budget: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "wrapgate_sql_connect_budget", default=None
)


def _within_budget(dialect: Any, record: Any, cargs: Any, cparams: dict) -> None:
    """A new connection waits no longer than the call has left (libpq counts whole
    seconds, at least 2)."""
    budget = connect_budget.get()
    if budget is not None:
        cparams["connect_timeout"] = max(2, min(int(cparams.get("connect_timeout", 5)), int(budget)))


def reason(exc: BaseException) -> str:
    """A connection failure's reason: libpq puts the server's own words after the
    address ("connection to server at ... failed: FATAL: ..."); keep those."""
    text = first_line(exc)
    marker = "failed: "
    return text[text.rindex(marker) + len(marker) :].strip() if marker in text else text


class DatabaseProblem(GatewayError):
    """A statement the database refused: ``sqlstate_<SQLSTATE>`` (SQLite: ``sqlite_<error
    name>``) and one line with the database's message and its DETAIL, never the SQL
    text or its parameters."""

    code = "database_error"


def problem(exc: BaseException) -> DatabaseProblem:
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None)
    name = getattr(orig, "sqlite_errorname", None)
    code = f"sqlstate_{state}" if state else f"{name.lower()}" if name else "database_error"
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if primary:
        detail = getattr(diag, "message_detail", None)
        text = f"{primary} (DETAIL: {detail})" if detail else primary
    else:
        text = first_line(exc)
    return DatabaseProblem(" ".join(text.split()), code=code)


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


# SQLSTATEs of a statement stopped by the limits the session set from the call's
# deadline: query_canceled (statement_timeout), lock_not_available (lock_timeout).
DEADLINE_STATES = {"57014", "55P03"}


def deadline_failure(exc: DBAPIError) -> Exception | None:
    """DeadlineExceeded when the database stopped the statement at the call's deadline."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    if state in DEADLINE_STATES or (state is None and _is_sqlite(exc) and "interrupted" in str(orig)):
        return DeadlineExceeded("the database did not finish the statement within the call's deadline")
    return None


def fatal(exc: DBAPIError) -> Exception | None:
    """The error that ends the whole call (connection lost, deadline), or None when
    ``exc`` is about one statement."""
    return connection_failure(exc) or deadline_failure(exc)


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


# SQLSTATEs (and SQLite words) that say the table's layout is not what was reflected:
# undefined_column, undefined_table, datatype_mismatch.
LAYOUT_STATES = {"42703", "42P01", "42804"}
LAYOUT_WORDS = ("no such column", "no such table", "has no column named")


def layout_changed(exc: BaseException) -> bool:
    """The database says a reflected table no longer looks as reflected."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in LAYOUT_STATES:
        return True
    return orig is not None and any(w in str(orig) for w in LAYOUT_WORDS)


# Seconds a reflected table is trusted before the database is asked again. Within it,
# a table is reflected again at once when the database says its layout changed
# (:func:`layout_changed`, or an export's row has other columns than reflected).
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


def forget(engine: Engine, table: str, schema: str | None) -> None:
    """Drop a reflected table: the next :func:`reflect` asks the database again."""
    with _tables_lock:
        _tables.get(engine, {}).pop((schema, table), None)
