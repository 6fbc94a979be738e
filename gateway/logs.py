"""Logging: one JSON line per record, the current call's fields on each, secrets masked.

:func:`bind` puts fields of the call being served (request id, traceid, wire
function, connection id...) and its :class:`~gateway.scrub.Scrubber` into a
context variable; every record logged while the call runs, by the core or by
a plugin through any logger, carries those fields and has the call's secrets
masked in its message and traceback. Each greenlet or thread has its own
context, so concurrent calls never see each other's fields.

The masking happens where records are made (a log record factory), not in a
handler: whatever handler a library or gunicorn attaches, it never sees a
record with a secret in it.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from .scrub import NOTHING, Scrubber

# Read-only default: bind() always sets a fresh dict, so no call ever shares one.
_CALL: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "wrapgate_call", default=MappingProxyType({})
)
_SCRUBBER: contextvars.ContextVar[Scrubber] = contextvars.ContextVar("wrapgate_scrubber", default=NOTHING)

#: Attributes every LogRecord has; anything else on a record is an extra field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def bind(**fields: Any) -> None:
    """Add fields (None values are dropped) to the current call's log context."""
    current = dict(_CALL.get())
    current.update({k: v for k, v in fields.items() if v is not None})
    _CALL.set(current)


def bind_scrubber(scrubber: Scrubber) -> None:
    _SCRUBBER.set(scrubber)


def reset() -> None:
    _CALL.set({})
    _SCRUBBER.set(NOTHING)


_base_factory = logging.getLogRecordFactory()


def _make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every record: stamped with the call's fields, its secrets masked."""
    record = _base_factory(*args, **kwargs)
    fields = _CALL.get()
    if fields or _SCRUBBER.get():
        _stamp(record, fields)
    return record


def _stamp(record: logging.LogRecord, fields: dict[str, Any]) -> None:
    # One attribute, not one per field: a plugin's own `extra={"function": ...}`
    # must not collide with ours (logging refuses to overwrite record attributes).
    record.wrapgate = fields
    scrubber = _SCRUBBER.get()
    if scrubber:
        record.msg = scrubber.scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrubber.scrub(record.exc_text)
        record.exc_info = None


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    """The call's fields, then the record's own extras (which win)."""
    extra = dict(getattr(record, "wrapgate", None) or {})
    extra.update(
        {
            k: v
            for k, v in vars(record).items()
            if k not in _STANDARD and k != "wrapgate" and not k.startswith("_")
        }
    )
    return extra


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extra(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = _extra(record)
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return text


def configure(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Route every logger (the core's, plugins', libraries') through one handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    logging.setLogRecordFactory(_make_record)
    # The gateway owns the root logger: a handler someone else put there (gunicorn's
    # logging config does) would write every record a second time, in its own format.
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
