"""Import batches: insert, update or upsert, one result per record, in order.

The batch runs in one transaction with a savepoint per record: a bad record
rolls back only itself and answers 422 with the database's message, its
neighbours are written. If the connection is lost, nothing of the batch was
committed, so every record that had not already failed answers 401.
Identifiers come from the reflected table, never from the record as text.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, StatementError

from gateway.errors import InvalidConfiguration, RecordError, record_result

from .engines import connection_failure, first_line, reflect

_NATIVE_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def import_batch(engine: Engine, conf: Mapping[str, Any], records: Sequence[Any]) -> list[dict]:
    with engine.connect() as conn:
        table = reflect(conn, conf["table"], conf.get("schema"))
    keys = conf.get("keys") or [c.name for c in table.primary_key.columns]
    for name in keys:
        if name not in table.c:
            raise InvalidConfiguration(f"key {name!r} is not a column of {table.name}")
    if not keys and (conf["operation"] != "insert" or conf["ignoreExisting"]):
        raise InvalidConfiguration(f"{table.name} has no primary key: configure keys")
    id_column = conf.get("idColumn") or (keys[0] if keys else None)
    if id_column is not None and id_column not in table.c:
        raise InvalidConfiguration(f"idColumn {id_column!r} is not a column of {table.name}")
    writer = _Writer(table, conf, keys, id_column)
    results: list[dict | None] = [None] * len(records)
    written: list[int] = []
    try:
        with engine.connect() as conn:
            with conn.begin():
                for position, record in enumerate(records):
                    try:
                        values = writer.values(record)
                        with conn.begin_nested():
                            results[position] = writer.write(conn, values)
                        written.append(position)
                    except RecordError as exc:
                        results[position] = record_result(exc)
                    except (DBAPIError, StatementError) as exc:
                        if isinstance(exc, DBAPIError) and connection_failure(exc) is not None:
                            raise
                        results[position] = record_result(_as_problem(exc))
    except DBAPIError as exc:
        failure = connection_failure(exc)
        if failure is None:
            raise
        # The transaction is gone: nothing written in it stayed.
        return [r if r is not None and r["statusCode"] == 422 else record_result(failure) for r in results]
    return results  # type: ignore[return-value]


def _as_problem(exc: Exception) -> RecordError:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return RecordError(first_line(exc), code=f"sqlstate_{state}" if state else None)


def _coerce(column: sa.Column, value: Any) -> Any:
    """A JSON value as the column's Python type: the inverse of the export's JSON forms
    (ISO 8601 text for dates and times, base64 for bytes, numbers or text for decimals)."""
    if not isinstance(value, str):
        if isinstance(value, float) and isinstance(column.type, sa.Numeric) and column.type.asdecimal:
            return decimal.Decimal(repr(value))
        return value
    kind = column.type
    try:
        if isinstance(kind, sa.DateTime):
            return datetime.datetime.fromisoformat(value)
        if isinstance(kind, sa.Date):
            return datetime.date.fromisoformat(value)
        if isinstance(kind, sa.Time):
            return datetime.time.fromisoformat(value)
        if isinstance(kind, sa.LargeBinary):
            return base64.b64decode(value, validate=True)
        if isinstance(kind, sa.Numeric):
            return decimal.Decimal(value)
    except (ValueError, decimal.InvalidOperation, binascii.Error):
        raise RecordError(
            f"{column.name}: {value!r} is not a valid {kind.__class__.__name__.lower()}"
        ) from None
    return value


class _Writer:
    def __init__(self, table: sa.Table, conf: Mapping[str, Any], keys: list[str], id_column: str | None):
        self.table, self.conf, self.keys, self.id_column = table, conf, keys, id_column
        self.operation = conf["operation"]

    def values(self, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise RecordError("a record must be a JSON object")
        unknown = [name for name in record if name not in self.table.c]
        if unknown and not self.conf["ignoreUnknownFields"]:
            raise RecordError(f"{', '.join(sorted(unknown))}: not a column of {self.table.name}")
        values = {
            name: _coerce(self.table.c[name], value) for name, value in record.items() if name in self.table.c
        }
        if self.operation != "insert" or self.conf["ignoreExisting"]:
            missing = [k for k in self.keys if values.get(k) is None]
            if missing:
                raise RecordError(f"the record has no value for key {', '.join(missing)}")
        return values

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
        """(rows affected, id of the first) of an insert/update/upsert."""
        if self.id_column is not None and returning:
            rows = conn.execute(stmt.returning(self.table.c[self.id_column])).all()
            return len(rows), rows[0][0] if rows else None
        result = conn.execute(stmt)
        pk = getattr(result, "inserted_primary_key", None) if result.context.isinsert else None
        return result.rowcount, pk[0] if pk and self.id_column in self.keys else None

    def write(self, conn: Connection, values: dict[str, Any]) -> dict:
        table, dialect = self.table, conn.dialect
        changes = {k: v for k, v in values.items() if k not in self.keys}
        if self.operation == "insert":
            if self.conf["ignoreExisting"] and self._exists(conn, values):
                return self._entry(None, values, ignored=True)
            _, record_id = self._execute_returning(
                conn, sa.insert(table).values(values), dialect.insert_returning
            )
            return self._entry(record_id, values)
        if self.operation == "update":
            if changes:
                stmt = sa.update(table).where(self._where(values)).values(changes)
                matched, record_id = self._execute_returning(conn, stmt, dialect.update_returning)
            else:
                matched, record_id = int(self._exists(conn, values)), None
            if not matched:
                if self.conf["ignoreMissing"]:
                    return self._entry(None, values, ignored=True)
                raise RecordError("no row with " + ", ".join(f"{k}={values[k]!r}" for k in self.keys))
            return self._entry(record_id, values)
        native = _NATIVE_UPSERT.get(dialect.name)
        if native is not None:
            index = [table.c[k] for k in self.keys]
            stmt = native(table).values(values)
            stmt = (
                stmt.on_conflict_do_update(index_elements=index, set_=changes)
                if changes
                else stmt.on_conflict_do_nothing(index_elements=index)
            )
            _, record_id = self._execute_returning(conn, stmt, dialect.insert_returning)
            return self._entry(record_id, values)
        # No native upsert: update, else insert, inside this record's savepoint.
        if changes:
            matched = conn.execute(sa.update(table).where(self._where(values)).values(changes)).rowcount
        else:
            matched = int(self._exists(conn, values))
        if not matched:
            conn.execute(sa.insert(table).values(values))
        return self._entry(None, values)
