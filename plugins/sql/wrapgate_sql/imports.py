"""Import batches: insert, update or upsert, one result per record, in order.

Records are checked first, in Python: a value that does not fit its column
exactly (``1.5`` or ``true`` for an integer, three decimals for
``numeric(10, 2)``, text that is no date) is that record's 422, never coerced.

``insert`` and ``upsert`` (PostgreSQL, SQLite: ``INSERT ... ON CONFLICT``) then
write the good records with one multi-row statement per run of records with
the same fields, inside a savepoint. Only when that statement fails is the run
split in halves, again and again (bisection), until each bad record stands
alone and answers 422 with the database's message; every good record is still
written.

``update`` and ``insert`` with ``ignoreExisting`` need an answer per record (was
a row matched? which id?), so they send one statement per record, but a run of
them at once, inside one savepoint, bisected the same way on failure:

* PostgreSQL (psycopg 3): the driver's ``executemany(..., returning=True)`` in
  pipeline mode, so a run of up to ``CHUNK`` records is one round trip and each
  statement's own RETURNING row says what happened to its record;
* SQLite (in-process: no trip to save): the record's statement compiled once,
  with RETURNING, executed record after record in the run's savepoint;
* other databases: the statements one after the other in the run's savepoint.

The statements run in the records' order, so a key that comes twice in a batch
behaves as if the records came one by one (the second update wins; the second
insert of a new key is ``ignored``). ``update`` of a row that is not there
matches nothing: 422, or ``ignored`` with ``ignoreMissing``. Upsert on a
database without ``ON CONFLICT`` writes a record at a time, each in its own
savepoint.

The batch is one transaction: if the connection is lost, nothing of it was
committed, so every record that had not already failed answers 401.
Identifiers come from the reflected table, never from the record as text.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import operator
import re
import threading
import uuid
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, StatementError

from gateway.errors import (
    ConnectionOffline,
    CredentialsRefused,
    InvalidConfiguration,
    RecordError,
    record_result,
)

from .engines import fatal, forget, problem, reflect
from .session import session

_NATIVE_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

# Records per multi-row statement (SQLAlchemy pages them further to the driver's limits).
CHUNK = 1000


def import_batch(
    engine: Engine, conf: Mapping[str, Any], records: Sequence[Any], context: Any = None
) -> list[dict]:
    results: list[dict | None] = [None] * len(records)
    try:
        with session(engine, context) as conn:
            table = _table(conn, engine, conf, records)
            writer = _Writer(table, conf)
            good: list[tuple[int, dict[str, Any]]] = []
            for position, record in enumerate(records):
                try:
                    good.append((position, writer.values(record)))
                except RecordError as exc:
                    results[position] = record_result(exc)
            writer.write_all(conn, good, results)
    except (ConnectionOffline, CredentialsRefused) as failure:
        # The transaction is gone: nothing written in it stayed.
        return [r if r is not None and r["statusCode"] == 422 else record_result(failure) for r in results]
    return results  # type: ignore[return-value]


def _table(conn: Connection, engine: Engine, conf: Mapping[str, Any], records: Sequence[Any]) -> sa.Table:
    table = reflect(conn, conf["table"], conf.get("schema"))
    named = {name for record in records if isinstance(record, dict) for name in record}
    if named - set(table.c.keys()):
        # A field that is no column may be a column added since the table was reflected.
        forget(engine, conf["table"], conf.get("schema"))
        table = reflect(conn, conf["table"], conf.get("schema"))
    return table


def _as_problem(exc: Exception) -> RecordError:
    found = problem(exc)
    return RecordError(found.message, code=found.code)


_INTEGER = re.compile(r"[+-]?\d+")


def _refuse(column: sa.Column, value: Any, kind: str) -> RecordError:
    shown = repr(value) if not isinstance(value, bool) else str(value).lower()
    return RecordError(
        f"{column.name}: {shown[:100]} is not {kind}: values are stored exactly, never coerced"
    )


def _coerce(column: sa.Column, value: Any) -> Any:
    """A JSON value as the column's Python type, exactly: the inverse of the export's JSON
    forms (ISO 8601 text for dates and times, base64 for bytes, numbers or text for
    decimals). A value the column cannot hold as it is raises RecordError."""
    if value is None:
        return None
    kind = column.type
    try:
        if isinstance(kind, sa.Boolean):
            if isinstance(value, bool):
                return value
            raise _refuse(column, value, "a boolean (true or false)")
        if isinstance(kind, sa.Integer):
            if isinstance(value, bool):
                raise _refuse(column, value, "an integer")
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
                return int(value)
            raise _refuse(column, value, "an integer")
        if isinstance(kind, sa.Float):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                return float(value)
            raise _refuse(column, value, "a number")
        if isinstance(kind, sa.Numeric):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise _refuse(column, value, "a number")
            number = decimal.Decimal(repr(value) if isinstance(value, float) else str(value).strip())
            scale = kind.scale
            if (
                scale is not None
                and number.is_finite()
                and number != number.quantize(decimal.Decimal(1).scaleb(-scale))
            ):
                raise _refuse(column, value, f"a number with at most {scale} decimal places")
            return number if kind.asdecimal else float(number)
        if isinstance(value, bool) and not isinstance(kind, (sa.JSON, sa.types.NullType)):
            raise _refuse(column, value, f"a {kind.__class__.__name__.lower()}")
        if isinstance(kind, (sa.DateTime, sa.Date, sa.Time, sa.LargeBinary, sa.Uuid)) and not isinstance(
            value, str
        ):
            raise _refuse(column, value, f"a {kind.__class__.__name__.lower()} (give it as text)")
        if isinstance(kind, sa.DateTime):
            return datetime.datetime.fromisoformat(value)
        if isinstance(kind, sa.Date):
            return datetime.date.fromisoformat(value)
        if isinstance(kind, sa.Time):
            return datetime.time.fromisoformat(value)
        if isinstance(kind, sa.LargeBinary):
            return base64.b64decode(value, validate=True)
        if isinstance(kind, sa.Uuid):
            parsed = uuid.UUID(value)
            return parsed if kind.as_uuid else str(parsed)
        if isinstance(kind, sa.String) and isinstance(value, (int, float)):
            return str(value)  # a number's own digits, exactly
        if isinstance(kind, sa.String) and not isinstance(value, str):
            raise _refuse(column, value, "text")
    except (ValueError, decimal.InvalidOperation, binascii.Error):
        raise RecordError(
            f"{column.name}: {value!r} is not a valid {kind.__class__.__name__.lower()}"
        ) from None
    return value


def _exact_types(kind: Any) -> frozenset:
    """Python types a column of ``kind`` stores as they are: no check beyond the type."""
    if isinstance(kind, sa.Boolean):
        return frozenset({bool})
    if isinstance(kind, sa.Integer):
        return frozenset({int})
    if isinstance(kind, sa.Float):
        return frozenset({int, float})
    if isinstance(kind, (sa.Numeric, sa.DateTime, sa.Date, sa.Time, sa.LargeBinary, sa.Uuid)):
        return frozenset()
    if isinstance(kind, sa.String):
        return frozenset({str})
    return frozenset({str, int, float, dict, list})


def _driver_takes(kind: Any, dialect: Any) -> bool:
    """Whether the driver takes a checked value of this type as it is: no bind processing
    (a native boolean's processor only re-checks what _coerce already has)."""
    if isinstance(kind, sa.Boolean):
        return bool(dialect.supports_native_boolean)
    return kind.dialect_impl(dialect).bind_processor(dialect) is None


def _coercer(column: sa.Column):
    exact = _exact_types(column.type) | {type(None)}
    kind = column.type
    if isinstance(kind, sa.DateTime):

        def timestamp(value: Any) -> Any:
            # The common case, ISO text, parsed in C; anything else (and bad text) as _coerce says.
            if type(value) is str:
                try:
                    return datetime.datetime.fromisoformat(value)
                except ValueError:
                    pass
            return _coerce(column, value)

        return timestamp
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float) and kind.asdecimal:
        # No more decimal places than the scale: a number given with fewer digits (the
        # shortest repr of a float has no trailing zeros) needs no quantize to prove it.
        fewest = -kind.scale if kind.scale is not None else None
        to_decimal = decimal.Decimal

        def number(value: Any) -> Any:
            kind_of = type(value)
            if kind_of is int or kind_of is float:
                found = to_decimal(repr(value) if kind_of is float else value)
                exponent = found.as_tuple().exponent
                if found.is_finite() and (fewest is None or exponent >= fewest):  # type: ignore[operator]
                    return found
            return value if value is None else _coerce(column, value)

        return number

    def coerce(value: Any) -> Any:
        # The common case (the record's JSON type is the column's) costs one set lookup.
        return value if type(value) in exact else _coerce(column, value)

    return coerce


# Compiled SQL of raw multi-row statements, per reflected table (a table reflected
# again is a new object, so a changed layout never reuses old SQL).
_RAW_SQL: weakref.WeakKeyDictionary[sa.Table, dict] = weakref.WeakKeyDictionary()
_RAW_LOCK = threading.Lock()
_PYFORMAT = re.compile(r"(?<!%)%\((p\d+)\)s")


def _raw_statement(writer: _Writer, dialect: Any, fields: tuple[str, ...]) -> tuple[str, list[str] | None]:
    """(SQL, the record fields of its parameters in order, or None for named ``pN``)."""
    key = (dialect.name, writer.operation, fields, tuple(writer.keys))
    with _RAW_LOCK:
        found = _RAW_SQL.get(writer.table, {}).get(key)
    if found is not None:
        return found
    compiled = writer._statement(dialect, list(fields), False, params=True).compile(dialect=dialect)
    at = {f"p{i}": f for i, f in enumerate(fields)}
    sql, order = str(compiled), None
    if compiled.positional:
        order = [at[name] for name in compiled.positiontup or []]
    elif dialect.paramstyle == "pyformat":
        # Positional %s: the driver takes tuples, cheaper than a dict per record.
        order = [at[name] for name in _PYFORMAT.findall(sql)]
        sql = _PYFORMAT.sub("%s", sql)
    with _RAW_LOCK:
        _RAW_SQL.setdefault(writer.table, {})[key] = (sql, order)
    return sql, order


class _Writer:
    def __init__(self, table: sa.Table, conf: Mapping[str, Any]):
        keys = conf.get("keys") or [c.name for c in table.primary_key.columns]
        for name in keys:
            if name not in table.c:
                raise InvalidConfiguration(f"key {name!r} is not a column of {table.name}")
        if not keys and (conf["operation"] != "insert" or conf["ignoreExisting"]):
            raise InvalidConfiguration(f"{table.name} has no primary key: configure keys")
        id_column = conf.get("idColumn") or (keys[0] if keys else None)
        if id_column is not None and id_column not in table.c:
            raise InvalidConfiguration(f"idColumn {id_column!r} is not a column of {table.name}")
        self.table, self.conf, self.keys, self.id_column = table, conf, keys, id_column
        self.operation = conf["operation"]
        self.coercers = {c.name: _coercer(c) for c in table.c}

    def values(self, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise RecordError("a record must be a JSON object")
        coercers = self.coercers
        if not coercers.keys() >= record.keys():
            unknown = [name for name in record if name not in coercers]
            if not self.conf["ignoreUnknownFields"]:
                raise RecordError(f"{', '.join(sorted(unknown))}: not a column of {self.table.name}")
            record = {name: value for name, value in record.items() if name in coercers}
        values = {name: coercers[name](value) for name, value in record.items()}
        if self.operation != "insert" or self.conf["ignoreExisting"]:
            missing = [k for k in self.keys if values.get(k) is None]
            if missing:
                raise RecordError(f"the record has no value for key {', '.join(missing)}")
        return values

    # -- the batch --------------------------------------------------------

    def write_all(self, conn: Connection, good: list[tuple[int, dict]], results: list[dict | None]) -> None:
        native = _NATIVE_UPSERT.get(conn.dialect.name)
        if self.operation == "upsert" and native is None:
            for position, values in good:
                self._one(conn, position, values, results)
            return
        # One multi-row statement per run (insert, upsert), or a run of per-record
        # statements (update, insert with ignoreExisting).
        multi_row = self.operation == "upsert" or not (
            self.operation == "update" or self.conf["ignoreExisting"]
        )
        # Runs of records with the same fields share a statement; order is kept.
        run: list[tuple[int, dict]] = []
        for item in good:
            if run and (item[1].keys() != run[0][1].keys() or len(run) >= CHUNK):
                self._bisect(conn, run, results, multi_row)
                run = []
            run.append(item)
        if run:
            self._bisect(conn, run, results, multi_row)

    def _bisect(
        self, conn: Connection, run: list[tuple[int, dict]], results: list[dict | None], multi_row: bool
    ) -> None:
        try:
            with conn.begin_nested():
                rows = [values for _, values in run]
                if multi_row:
                    entries = [self._entry(i, v) for i, v in zip(self._many(conn, rows), rows, strict=True)]
                else:
                    entries = self._each(conn, rows)
        except (DBAPIError, StatementError) as exc:
            if isinstance(exc, DBAPIError) and fatal(exc) is not None:
                raise
            if len(run) == 1:
                results[run[0][0]] = record_result(_as_problem(exc))
                return
            half = len(run) // 2
            self._bisect(conn, run[:half], results, multi_row)
            self._bisect(conn, run[half:], results, multi_row)
            return
        for (position, _), entry in zip(run, entries, strict=True):
            results[position] = entry

    # -- a run of per-record statements (update; insert with ignoreExisting) --

    def _each(self, conn: Connection, rows: list[dict]) -> list[dict]:
        """Each record's statement, in order, in the caller's savepoint: an entry per
        record (a row not matched is its own 422 or ``ignored``, not a failure of the
        run). A database error fails the whole run, for the caller to bisect."""
        dialect = conn.dialect
        if _pipelines(conn):
            found = _pipelined(conn, *self._record_statement(dialect, tuple(rows[0])), rows)
            return [self._outcome(hit, values) for hit, values in zip(found, rows, strict=True)]
        if dialect.name == "sqlite" and dialect.insert_returning and dialect.update_returning:
            # In-process: the statement compiled once, then executed record by record.
            sql, order, processors = self._record_statement(dialect, tuple(rows[0]))
            found = [
                conn.exec_driver_sql(sql, params).first() for params in _parameters(rows, order, processors)
            ]
            return [self._outcome(hit, values) for hit, values in zip(found, rows, strict=True)]
        entries = []
        for values in rows:
            try:
                entries.append(self.write(conn, values))
            except RecordError as exc:
                entries.append(record_result(exc))
        return entries

    def _outcome(self, hit: tuple | None, values: Mapping[str, Any]) -> dict:
        """The entry of a record whose statement returned ``hit`` (its first row, or None)."""
        if hit is not None:
            return self._entry(hit[0], values)
        if self.operation == "insert" or self.conf["ignoreMissing"]:
            return self._entry(None, values, ignored=True)  # it exists / it is not there
        return record_result(self._missing(values))

    def _missing(self, values: Mapping[str, Any]) -> RecordError:
        return RecordError("no row with " + ", ".join(f"{k}={values[k]!r}" for k in self.keys))

    def _record_statement(self, dialect: Any, fields: tuple[str, ...]) -> tuple[str, list, list]:
        """(SQL with positional ``%s``, the record field of each parameter, its bind
        processor or None) of one record's statement, which returns the id column's
        value of the row it matched or wrote, and no row when it did neither."""
        key = (
            "each",
            dialect.name,
            self.operation,
            self.conf["ignoreExisting"],
            fields,
            tuple(self.keys),
            self.id_column,
        )
        with _RAW_LOCK:
            found = _RAW_SQL.get(self.table, {}).get(key)
        if found is not None:
            return found
        table = self.table
        param = {f: sa.bindparam(f"p{i}", type_=table.c[f].type) for i, f in enumerate(fields)}
        where = sa.and_(*[table.c[k] == param[k] for k in self.keys])
        id_column = table.c[self.id_column or self.keys[0]]
        changes = {f: param[f] for f in fields if f not in self.keys}
        stmt: Any
        if self.operation == "insert":  # ignoreExisting: write the row unless its key is there
            # A SELECT's values are not typed by the target columns: psycopg's dialect
            # casts each parameter to its column's type (``%s::INTEGER``).
            selected = sa.select(*[param[f] for f in fields])
            stmt = sa.insert(table).from_select(list(fields), selected.where(~sa.exists().where(where)))
            stmt = stmt.returning(id_column)
        elif changes:
            stmt = sa.update(table).where(where).values(changes).returning(id_column)
        else:  # only keys: nothing to change, the answer is whether the row is there
            stmt = sa.select(id_column).where(where)
        compiled = stmt.compile(dialect=dialect)
        sql = str(compiled)
        if compiled.positional:  # SQLite's "?"s, one per use of a parameter
            names = list(compiled.positiontup or [])
        elif dialect.paramstyle == "pyformat":  # psycopg: to positional %s, which takes tuples
            names = _PYFORMAT.findall(sql)
            sql = _PYFORMAT.sub("%s", sql)
        else:
            raise AssertionError(f"no per-record statements for {dialect.name}")
        if set(names) != set(compiled.params):
            raise AssertionError(f"unexpected parameters in {dialect.name}'s statement")
        order = [fields[int(name[1:])] for name in names]
        processors = [
            None
            if _driver_takes(table.c[f].type, dialect)
            else table.c[f].type.dialect_impl(dialect).bind_processor(dialect)
            for f in order
        ]
        found = (sql, order, processors)
        with _RAW_LOCK:
            _RAW_SQL.setdefault(self.table, {})[key] = found
        return found

    def _many(self, conn: Connection, rows: list[dict]) -> list[Any]:
        """One statement for ``rows`` (all with the same fields): the ids, in order."""
        table, fields, dialect = self.table, list(rows[0]), conn.dialect
        returning = self.id_column is not None and self.id_column not in fields
        # Values the driver takes as they are (no SQLAlchemy bind processing, e.g. every
        # type of the benchmark's table on psycopg) go to its executemany directly.
        raw = not returning and all(_driver_takes(table.c[f].type, dialect) for f in fields)
        if raw:
            sql, order = _raw_statement(self, dialect, tuple(fields))
            if order is None:
                named = [{f"p{i}": row[f] for i, f in enumerate(fields)} for row in rows]
                _quietly(conn, lambda: conn.exec_driver_sql(sql, named))
            else:
                pick = operator.itemgetter(*order)
                params = [pick(row) for row in rows] if len(order) > 1 else [(row[order[0]],) for row in rows]
                _quietly(conn, lambda: conn.exec_driver_sql(sql, params))
            return [None] * len(rows)
        stmt = self._statement(dialect, fields, returning)
        if returning:
            stmt = stmt.returning(table.c[self.id_column or ""], sort_by_parameter_order=True)
            found = conn.execute(stmt, rows).all()
            return [row[0] for row in found]
        _quietly(conn, lambda: conn.execute(stmt, rows))
        return [None] * len(rows)

    def _statement(self, dialect: Any, fields: list[str], returning: bool, params: bool = False) -> Any:
        """The insert or upsert of ``fields``; with ``params``, its values are bind
        parameters ``p0``, ``p1``... (for the driver's executemany)."""
        table = self.table
        base: Any = sa.insert(table) if self.operation == "insert" else _NATIVE_UPSERT[dialect.name](table)
        if params:
            base = base.values({f: sa.bindparam(f"p{i}") for i, f in enumerate(fields)})
        return base if self.operation == "insert" else self._on_conflict(base, fields, returning)

    def _on_conflict(self, native: Any, fields: list[str], returning: bool) -> Any:
        index = [self.table.c[k] for k in self.keys]
        changes = {c: native.excluded[c] for c in fields if c not in self.keys}
        if not changes and returning:
            changes = {self.keys[0]: native.excluded[self.keys[0]]}  # so RETURNING sees the row
        if changes:
            return native.on_conflict_do_update(index_elements=index, set_=changes)
        return native.on_conflict_do_nothing(index_elements=index)

    # -- a record at a time (and its own savepoint: upsert without a native form) --

    def _one(self, conn: Connection, position: int, values: dict, results: list[dict | None]) -> None:
        try:
            with conn.begin_nested():
                results[position] = self.write(conn, values)
        except RecordError as exc:
            results[position] = record_result(exc)
        except (DBAPIError, StatementError) as exc:
            if isinstance(exc, DBAPIError) and fatal(exc) is not None:
                raise
            results[position] = record_result(_as_problem(exc))

    def _where(self, values: Mapping[str, Any]):
        return sa.and_(*[self.table.c[k] == values[k] for k in self.keys])

    def _exists(self, conn: Connection, values: Mapping[str, Any]) -> bool:
        stmt = sa.select(sa.literal(1)).select_from(self.table).where(self._where(values)).limit(1)
        return conn.execute(stmt).first() is not None

    def _entry(self, record_id: Any, values: Mapping[str, Any], ignored: bool = False) -> dict:
        if record_id is None and self.id_column is not None:
            record_id = values.get(self.id_column)
        entry: dict[str, Any] = {"statusCode": 200}
        if record_id is not None:
            entry["id"] = str(record_id)
        if ignored:
            entry["ignored"] = True
        return entry

    def _execute_returning(self, conn: Connection, stmt, returning: bool) -> tuple[int, Any]:
        """(rows affected, id of the first) of an insert/update."""
        if self.id_column is not None and returning:
            rows = conn.execute(stmt.returning(self.table.c[self.id_column])).all()
            return len(rows), rows[0][0] if rows else None
        result = conn.execute(stmt)
        pk = getattr(result, "inserted_primary_key", None) if result.context.isinsert else None
        return result.rowcount, pk[0] if pk and self.id_column in self.keys else None

    def write(self, conn: Connection, values: dict[str, Any]) -> dict:
        table, dialect = self.table, conn.dialect
        changes = {k: v for k, v in values.items() if k not in self.keys}
        if self.operation == "insert":  # ignoreExisting
            if self._exists(conn, values):
                return self._entry(None, values, ignored=True)
            _, record_id = self._execute_returning(
                conn, sa.insert(table).values(values), dialect.insert_returning
            )
            return self._entry(record_id, values)
        if self.operation == "update":
            if changes:
                stmt = sa.update(table).where(self._where(values)).values(changes)
                matched, record_id = self._execute_returning(conn, stmt, dialect.update_returning)
            else:  # only keys: nothing to change, the answer is whether the row is there
                column = table.c[self.id_column or self.keys[0]]
                found = conn.execute(sa.select(column).where(self._where(values)).limit(1)).first()
                matched, record_id = int(found is not None), found[0] if found else None
            if not matched:
                if self.conf["ignoreMissing"]:
                    return self._entry(None, values, ignored=True)
                raise self._missing(values)
            return self._entry(record_id, values)
        # No native upsert: update, else insert, inside this record's savepoint.
        if changes:
            matched = conn.execute(sa.update(table).where(self._where(values)).values(changes)).rowcount
        else:
            matched = int(self._exists(conn, values))
        if not matched:
            conn.execute(sa.insert(table).values(values))
        return self._entry(None, values)


def _pipelines(conn: Connection) -> bool:
    """Whether the connection's driver runs many statements in one round trip, each
    with its own result (psycopg 3 with a libpq that has pipeline mode)."""
    if conn.dialect.driver != "psycopg":
        return False
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def _quietly(conn: Connection, run: Any) -> None:
    """``run()`` (an executemany through SQLAlchemy), inside a psycopg pipeline opened
    here: psycopg's executemany pipelines anyway, but the pipeline it opens itself
    logs a warning ("error ignored terminating ... pipeline aborted", with the
    server's address) for every failed statement, once per step of a bisection."""
    if not _pipelines(conn):
        run()
        return
    import psycopg

    raw: Any = conn.connection.dbapi_connection
    failure: BaseException | None = None
    try:
        with raw.pipeline():
            try:
                run()
            except StatementError as exc:  # DBAPIError too: the statement failed
                failure = exc
    except psycopg.Error as exc:
        # Without RETURNING, psycopg learns of a failed statement only when the
        # pipeline syncs, here: raised as SQLAlchemy would have.
        if failure is None:
            lost = conn.dialect.is_disconnect(exc, raw, None)  # type: ignore[arg-type]
            failure = DBAPIError.instance(
                None, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=lost
            )
    if failure is not None:
        raise failure


def _parameters(rows: list[dict], order: list, processors: list) -> list[tuple]:
    """Each record's parameters, in the statement's order, processed for the driver."""
    if any(processors):
        return [
            tuple(v if p is None else p(v) for v, p in zip((row[f] for f in order), processors, strict=True))
            for row in rows
        ]
    # The driver takes every value as it is (the usual case): no Python loop per value.
    pick = operator.itemgetter(*order)
    return [pick(row) for row in rows] if len(order) > 1 else [(row[order[0]],) for row in rows]


def _pipelined(conn: Connection, sql: str, order: list, processors: list, rows: list[dict]) -> list:
    """``sql`` once per record of ``rows``, pipelined: the first row each returned, or None.

    The driver's cursor is used directly (SQLAlchemy's executemany keeps no result per
    statement); its errors come out as SQLAlchemy's, as if SQLAlchemy had run it."""
    import psycopg

    params = _parameters(rows, order, processors)
    raw: Any = conn.connection.dbapi_connection
    cursor = raw.cursor()
    failure: psycopg.Error | None = None
    hits: list = []
    try:
        # The pipeline is opened here, not by executemany, so that a failed statement
        # is caught inside it and the pipeline's own "aborted" comes out (below)
        # instead of being logged as a warning on the way out.
        with raw.pipeline():
            try:
                cursor.executemany(sql, params, returning=True)
                while True:
                    hits.append(cursor.fetchone())
                    if not cursor.nextset():
                        break
            except psycopg.Error as exc:
                failure = exc
    except psycopg.Error as exc:
        failure = failure or exc
    finally:
        cursor.close()
    if failure is None:
        return hits
    # A lost connection is left to SQLAlchemy to invalidate: its rollback of the
    # savepoint fails on it next, the way its own statements do.
    lost = conn.dialect.is_disconnect(failure, raw, cursor)  # type: ignore[arg-type]
    raise DBAPIError.instance(
        sql,
        None,
        failure,
        psycopg.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=conn.dialect,
    ) from None
