"""Export pages: keyset pagination over a table or a read-only query.

Every page is ``WHERE (key, tie-breakers) > <position of the previous page's
last row> ORDER BY key, tie-breakers LIMIT pageSize + 1``: the cost of a page
does not grow with the table, and memory holds one page.

Key rules (never a silent gap):

* a table's key that is its primary key, or unique and NOT NULL, pages alone;
* any other key is paged on (key, primary key): ties and NULLs (which come
  last) are covered; a table with no primary key and such a key is refused
  up front (422);
* a query's key must be unique and not NULL: the database cannot tell, so a
  page whose boundary falls between equal keys, or a row with a NULL key,
  stops the export with a 422 instead of skipping rows.

``state`` carries the position exactly (:mod:`.positions`): ``{"after": [...]}``
plus, for ``delta``, the window's end and, for ``once``, the rows to mark.

``delta`` exports rows with ``lastExecutionTime - lag <= dateField < now - lag``
(``deltaLagSeconds``, default 60): the lower bound is inclusive, and a row
written by a transaction still open when the previous run read is exported by
the next one, as long as it committed within the lag. Consecutive runs' windows
meet, so nothing falls between them; a row may come twice when it changes again.

``once`` marks a page's rows (``booleanField = true``) only when integrator.io
asks for the next page, which proves it received them; a page that is asked
again is answered again (the marking is idempotent). So a page with rows is
never the last: the call after it marks them and answers an empty last page.
"""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import itertools
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gateway.errors import InvalidConfiguration

from . import positions
from .engines import forget, layout_changed, reflect
from .queries import checked
from .session import session

DEFAULT_DELTA_LAG = 60.0

# Values orjson and the gateway write as they are (checked by exact type: fast). Not
# lists: an array's items may be values JSON cannot hold (a numeric[] with NaN).
_PLAIN = frozenset(
    {
        str,
        int,
        bool,
        type(None),
        dict,  # JSON from the database: nothing JSON cannot hold
        datetime.datetime,
        datetime.date,
        datetime.time,
        uuid.UUID,
        bytes,
    }
)
_DECIMALS = frozenset({decimal.Decimal, type(None)})
_DECIMAL = {decimal.Decimal}
_NOT_FINITE = {"NaN": "NaN", "sNaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}


def jsonable(value: Any) -> Any:
    """The documented JSON form of a database value (see the README)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return (
            value
            if math.isfinite(value)
            else ("NaN" if math.isnan(value) else str(value).replace("inf", "Infinity"))
        )
    if isinstance(value, decimal.Decimal):
        # JSON has no NaN or Infinity: those travel as the strings "NaN", "Infinity", "-Infinity".
        return value if value.is_finite() else _NOT_FINITE.get(str(value).lstrip("+"), "NaN")
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (tuple, set, frozenset, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, dict, datetime.date, datetime.time, uuid.UUID, bytes)):
        return value
    if isinstance(
        value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)
    ):
        return str(value)
    return str(value)


class LayoutChanged(Exception):
    """The rows came back with other columns than the reflected table has."""


def _column(columns: Any, name: str, what: str) -> sa.ColumnElement:
    try:
        return columns[name]
    except KeyError:
        raise InvalidConfiguration(f"{what} {name!r} is not a column of the export's source") from None


def _unique(table: sa.Table, column: Any) -> bool:
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and pk[0] is column:
        return True
    singles = [c.columns for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    singles += [i.columns for i in table.indexes if i.unique]
    return any(len(cols) == 1 and next(iter(cols)).name == column.name for cols in singles)


class Source:
    """What a page reads: columns, the ordering, the bound types of a position."""

    def __init__(self, conn: Connection, conf: Mapping[str, Any]):
        self.table: sa.Table | None = None
        self.columns: Any
        self.star = False
        if conf.get("table"):
            table = reflect(conn, conf["table"], conf.get("schema"))
            self.table, self.columns = table, table.c
            key = _column(table.c, conf["key"], "key")
            pk = [c for c in table.primary_key.columns if c is not key]
            if _unique(table, key) and not key.nullable:
                self.order: list[Any] = [key]
            elif pk or (table.primary_key.columns and not key.nullable):
                self.order = [key, *pk]
            else:
                why = "may be NULL" if key.nullable else "is not unique"
                raise InvalidConfiguration(
                    f"key {key.name!r} {why} and {table.name} has no primary key to break ties: "
                    "rows would be lost between pages; choose a unique, NOT NULL key"
                )
            self.nullable = bool(key.nullable)
            self.star = not conf.get("columns")
        else:
            query = checked(conf["query"], conn.dialect.name)
            names = [conf["key"], *(conf.get("columns") or [])]
            date_field = conf.get("_dateField")
            if date_field:
                names.append(date_field)
            text = sa.text(f"\n{query}\n").columns(*[sa.column(n) for n in dict.fromkeys(names)])
            self.columns = text.subquery("wrapgate_q").c
            self.order = [self.columns[conf["key"]]]
            self.nullable = True
            self.star = not conf.get("columns")
        self.key = self.order[0]

    def bind(self, column: Any, value: Any) -> Any:
        if self.table is not None:
            return sa.bindparam(None, value, type_=column.type)
        if isinstance(value, str):
            # Untyped: the database reads the text as the column's own type.
            return sa.bindparam(None, value, type_=sa.types.NullType())
        return sa.literal(value)

    def after(self, position: Sequence[Any]) -> Any:
        """Rows after ``position`` in ``ORDER BY key (NULLs last), tie-breakers``."""
        if len(position) != len(self.order):
            raise positions.BadPosition("state does not match the export's key")
        first, *rest = position
        if first is None:
            if not self.nullable or not rest:
                raise positions.BadPosition("state does not match the export's key")
            return sa.and_(self.key.is_(None), self._lexical(self.order[1:], rest))
        condition = self._lexical(self.order, position)
        return sa.or_(self.key.is_(None), condition) if self.nullable else condition

    def _lexical(self, columns: Sequence[Any], values: Sequence[Any]) -> Any:
        column, value = columns[0], values[0]
        bound = self.bind(column, value)
        if len(columns) == 1:
            return column > bound
        return sa.or_(column > bound, sa.and_(column == bound, self._lexical(columns[1:], values[1:])))

    def ordering(self) -> list[Any]:
        if self.nullable:
            # NULLs last on every database (PostgreSQL and SQLite disagree by default).
            return [sa.case((self.key.is_(None), 1), else_=0), *self.order]
        return list(self.order)


def _moment(column: Any, milliseconds: float) -> datetime.datetime:
    moment = datetime.datetime.fromtimestamp(milliseconds / 1000, datetime.UTC)
    # A column without a time zone holds UTC wall time (sessions run in UTC).
    typed = getattr(column, "type", None)
    return moment if getattr(typed, "timezone", True) else moment.replace(tzinfo=None)


def _millis(value: Any, what: str) -> float:
    try:
        number = float(value)
        datetime.datetime.fromtimestamp(number / 1000, datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidConfiguration(f"{what} must be milliseconds since the epoch, got {value!r}") from None
    return number


def export_page(
    engine: Engine,
    conf: Mapping[str, Any],
    export_type: str | None,
    delta: Mapping | None,
    once: Mapping | None,
    test: Mapping | None,
    state: Any,
    context: Any = None,
) -> dict[str, Any]:
    """One page; a table whose layout changed is reflected again and the page read again."""
    state = state if isinstance(state, dict) else {}
    call = {"type": export_type, "delta": delta or {}, "once": once or {}, "test": test or {}}
    try:
        return _page(engine, conf, call, state, context, strict=True)
    except (LayoutChanged, DBAPIError) as exc:
        if not conf.get("table") or (isinstance(exc, DBAPIError) and not layout_changed(exc)):
            raise
        forget(engine, conf["table"], conf.get("schema"))
    return _page(engine, conf, call, state, context, strict=False)


def _page(
    engine: Engine, conf: Mapping[str, Any], call: dict, state: dict, context: Any, strict: bool
) -> dict[str, Any]:
    export_type, delta, once, test = call["type"], call["delta"], call["once"], call["test"]
    if export_type == "delta":
        conf = {**conf, "_dateField": delta.get("dateField")}
    page_state: dict[str, Any] = {}
    with session(engine, context, read_only=bool(conf.get("query"))) as conn:
        source = Source(conn, conf)
        table, columns, key = source.table, source.columns, source.key
        flag = None
        marker = list(table.primary_key.columns) if table is not None and table.primary_key.columns else [key]
        if export_type == "once":
            if table is None:
                raise InvalidConfiguration("a once export needs a table: it marks exported rows")
            flag = _column(columns, once.get("booleanField", ""), "once.booleanField")
            if state.get("mark"):
                marks = [[positions.decode(v) for v in _as_list(m)] for m in state["mark"]]
                if any(len(m) != len(marker) for m in marks):
                    raise positions.BadPosition("state.mark does not match the table's key")
                which = (
                    marker[0].in_([m[0] for m in marks])
                    if len(marker) == 1
                    else sa.tuple_(*marker).in_([tuple(m) for m in marks])
                )
                conn.execute(sa.update(table).where(which).values({flag.name: True}))
        if source.star:
            selected: list[Any] = [sa.text("*")]
        else:
            selected = [_column(columns, c, "column") for c in conf["columns"]]
            extra = {c.name: c for c in [*source.order, *marker] if c.name not in conf["columns"]}
            selected += list(extra.values())
        size = conf["pageSize"]
        if export_type == "test":
            size = max(1, min(size, int(test.get("limit") or 1)))
        stmt = sa.select(*selected).select_from(table if table is not None else columns[key.name].table)
        stmt = stmt.order_by(*source.ordering()).limit(size + 1)
        if state.get("after") is not None:
            stmt = stmt.where(source.after([positions.decode(v) for v in _as_list(state["after"])]))
        if export_type == "delta":
            date_column = _column(columns, delta.get("dateField") or "", "delta.dateField")
            lag = float(conf.get("deltaLagSeconds", DEFAULT_DELTA_LAG)) * 1000
            since = _millis(delta.get("lastExecutionTime"), "delta.lastExecutionTime") - lag
            until = _millis(state["until"], "state.until") if "until" in state else time.time() * 1000 - lag
            page_state["until"] = until
            stmt = stmt.where(
                date_column >= source.bind(date_column, _moment(date_column, since)),
                date_column < source.bind(date_column, _moment(date_column, until)),
            )
        if flag is not None:
            stmt = stmt.where(sa.or_(flag.is_(False), flag.is_(None)))
        result = conn.execute(stmt)
        names = list(result.keys())
        types = [d[1] for d in result.cursor.description]  # read before fetching closes the cursor
        # The driver's own tuples: values are converted column by column below (_records).
        rows = result.cursor.fetchmany(size + 1)
        result.close()
        convert = _converters(conn, source, names, types, strict)
    more = len(rows) > size
    order_at = [names.index(c.name) for c in source.order]
    if table is None:
        _check_query_keys(rows, order_at[0], size, conf["key"])
    page = rows[:size]
    data = _records(names, page, convert)
    if export_type == "test":
        return {"data": data, "lastPage": True}
    if not page:
        return {"data": [], "lastPage": True}
    page_state["after"] = [positions.encode(page[-1][i]) for i in order_at]
    if flag is not None:
        mark_at = [names.index(c.name) for c in marker]
        page_state["mark"] = [[positions.encode(row[i]) for i in mark_at] for row in page]
        return {"data": data, "lastPage": False, "state": page_state}
    return {"data": data, "lastPage": not more, "state": page_state if more else None}


def _records(names: list[str], page: Sequence[Any], convert: list | None) -> list[dict]:
    """The page's rows as JSON-ready dicts. Column by column: a column whose values are
    all of types JSON takes as they are (the usual case) costs no Python call per value,
    and rows none of whose columns changed become dicts as the driver gave them."""
    if not page:
        return []
    columns: list[Any] = list(zip(*page, strict=True))
    changed = False
    for i, values in enumerate(columns):
        process = convert[i] if convert else None
        if process is not None:
            values = columns[i] = list(map(process, values))
            changed = True
        kinds = set(map(type, values))
        if kinds <= _PLAIN:
            continue
        changed = True
        if kinds == _DECIMAL and all(map(decimal.Decimal.is_finite, values)):
            # Exact digits, written by orjson as they are; map() keeps the loop in C, where
            # the serialiser's fallback would call Python once per value.
            columns[i] = list(map(orjson.Fragment, map(str, values)))
        elif kinds <= _DECIMALS:
            columns[i] = [
                v if v is None else orjson.Fragment(str(v)) if v.is_finite() else jsonable(v) for v in values
            ]
        else:
            columns[i] = list(map(jsonable, values))
    rows = zip(*columns, strict=True) if changed else page
    # map() again: a dict per row without a Python frame per row.
    return list(map(dict, map(zip, itertools.repeat(names), rows)))


def _as_list(value: Any) -> list:
    # States given before positions were lists held the key alone.
    return value if isinstance(value, list) else [value]


def _converters(
    conn: Connection, source: Source, names: list[str], types: list[Any], strict: bool
) -> list | None:
    """Per column, SQLAlchemy's result processing of the reflected type (rows are read
    raw); a ``SELECT *`` row whose columns differ from the reflection raises LayoutChanged."""
    table = source.table
    if table is None:
        return None
    if strict and source.star and names != [c.name for c in table.c]:
        raise LayoutChanged()
    dialect = conn.dialect
    processors = [
        table.c[n].type.dialect_impl(dialect).result_processor(dialect, t) if n in table.c else None
        for n, t in zip(names, types, strict=True)
    ]
    return processors if any(processors) else None


def _check_query_keys(rows: Sequence[Any], at: int, size: int, key: str) -> None:
    """A query's key must be unique and not NULL; a page that would skip rows is refused."""
    if any(row[at] is None for row in rows):
        raise InvalidConfiguration(
            f"key {key!r} is NULL in a row of the query: a query's key must be unique and NOT NULL"
        )
    if len(rows) > size and rows[size - 1][at] == rows[size][at]:
        raise InvalidConfiguration(
            f"key {key!r} has the same value in several rows of the query, across a page boundary: "
            "a query's key must be unique (rows would be skipped)"
        )
