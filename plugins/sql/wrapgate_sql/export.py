"""Export pages: keyset pagination over a table or a read-only query.

Every page is ``WHERE key > <last key of the previous page> ORDER BY key
LIMIT pageSize + 1``: the cost of a page does not grow with the table, and
memory holds one page. ``state`` is ``{"after": <last key>}`` (plus, for
``once``, the keys of the page just handed over).

``once`` marks a page's rows (``booleanField = true``) only when integrator.io
asks for the next page, which proves it received them; a page that is asked
again is answered again (the marking is idempotent). So a page with rows is
never the last: the call after it marks them and answers an empty last page.
"""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.errors import InvalidConfiguration

from .engines import reflect

# Values orjson and the gateway write themselves; anything else is widened here.
_NATIVE = (
    str,
    int,
    float,
    bool,
    type(None),
    dict,
    list,
    datetime.datetime,
    datetime.date,
    datetime.time,
    decimal.Decimal,
    uuid.UUID,
    bytes,
    memoryview,
)


def jsonable(value: Any) -> Any:
    """The documented JSON form of a database value (see the README)."""
    if isinstance(value, _NATIVE):
        return bytes(value) if isinstance(value, memoryview) else value
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(
        value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)
    ):
        return str(value)
    return str(value)


def _column(columns: Any, name: str, what: str) -> sa.ColumnElement:
    try:
        return columns[name]
    except KeyError:
        raise InvalidConfiguration(f"{what} {name!r} is not a column of the export's source") from None


def _source(conn: Connection, engine: Engine, conf: Mapping[str, Any]):
    if conf.get("table"):
        table = reflect(conn, conf["table"], conf.get("schema"))
        return table, table.c
    # A query: learn its columns from an empty run, then use it as a subquery.
    probe = conn.execute(sa.text(f"SELECT * FROM ({conf['query']}) AS wrapgate_q LIMIT 0"))
    names = list(probe.keys())
    probe.close()
    query = sa.text(conf["query"]).columns(*[sa.column(n) for n in names]).subquery("wrapgate_q")
    return None, query.c


def _since(column: sa.ColumnElement, milliseconds: Any) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromtimestamp(float(milliseconds) / 1000, datetime.UTC)
    except (TypeError, ValueError, OverflowError):
        raise InvalidConfiguration(
            f"delta.lastExecutionTime must be milliseconds since the epoch, got {milliseconds!r}"
        ) from None
    # A column without a time zone holds UTC wall time.
    return moment if getattr(column.type, "timezone", False) else moment.replace(tzinfo=None)


def export_page(
    engine: Engine,
    conf: Mapping[str, Any],
    export_type: str | None,
    delta: Mapping | None,
    once: Mapping | None,
    test: Mapping | None,
    state: Any,
) -> dict[str, Any]:
    state = state if isinstance(state, dict) else {}
    with engine.connect() as conn:
        with conn.begin():
            read_only = _read_only(conn) if conf.get("query") else _nothing
            with read_only:
                table, columns = _source(conn, engine, conf)
                key = _column(columns, conf["key"], "key")
                flag = None
                if export_type == "once":
                    if table is None:
                        raise InvalidConfiguration("a once export needs a table: it marks exported rows")
                    flag = _column(columns, (once or {}).get("booleanField", ""), "once.booleanField")
                    if state.get("mark"):
                        conn.execute(sa.update(table).where(key.in_(state["mark"])).values({flag.name: True}))
                selected = (
                    [_column(columns, c, "column") for c in conf["columns"]]
                    if conf.get("columns")
                    else list(columns)
                )
                if key not in selected:
                    selected.append(key)
                size = conf["pageSize"]
                if export_type == "test":
                    size = max(1, min(size, int((test or {}).get("limit") or 1)))
                stmt = sa.select(*selected).order_by(key).limit(size + 1)
                if state.get("after") is not None:
                    stmt = stmt.where(key > state["after"])
                if export_type == "delta":
                    date_column = _column(columns, (delta or {}).get("dateField", ""), "delta.dateField")
                    stmt = stmt.where(
                        date_column > _since(date_column, (delta or {}).get("lastExecutionTime"))
                    )
                if flag is not None:
                    stmt = stmt.where(sa.or_(flag.is_(False), flag.is_(None)))
                rows = conn.execute(stmt).mappings().fetchmany(size + 1)
    more = len(rows) > size
    rows = rows[:size]
    data = [{name: jsonable(value) for name, value in row.items()} for row in rows]
    if export_type == "test":
        return {"data": data, "lastPage": True}
    if not rows:
        return {"data": [], "lastPage": True}
    last = rows[-1][key.name]
    page_state: dict[str, Any] = {"after": jsonable(last)}
    if flag is not None:
        page_state["mark"] = [jsonable(row[key.name]) for row in rows]
        return {"data": data, "lastPage": False, "state": page_state}
    return {"data": data, "lastPage": not more, "state": None if not more else page_state}


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_nothing = _Nothing()


class _read_only:
    """A query runs where it cannot write: a read-only transaction (PostgreSQL,
    MySQL) or a query-only connection (SQLite)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"

    def __enter__(self):
        if self.sqlite:
            self.conn.exec_driver_sql("PRAGMA query_only = ON")
        elif self.conn.dialect.name in ("postgresql", "mysql", "mariadb"):
            self.conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        return self

    def __exit__(self, *exc):
        if self.sqlite:
            self.conn.exec_driver_sql("PRAGMA query_only = OFF")
        return False
