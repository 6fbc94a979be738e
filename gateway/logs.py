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
import re
import sys
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from .scrub import NOTHING, RECENT, Scrubber

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

# A query string in a URL a server logs ("Error handling request /function?access_token=...").
_QUERY = re.compile(r"(?<=[^\s?])\?[^\s\"'<>]+")


def strip_query(text: str) -> str:
    """``text`` with the query string of every URL or path in it replaced by ``?...``."""
    return _QUERY.sub("?...", text)


def _scrubbers() -> tuple[Scrubber, ...]:
    """The call's scrubber and the process's tokens; outside a call (a plugin's thread,
    a line of gunicorn's), the secrets of every recent call and the tokens."""
    call = _SCRUBBER.get()
    return (call, RECENT.permanent) if call else RECENT.outside()


def _make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every record: stamped with the call's fields, its secrets masked, in any thread."""
    record = _base_factory(*args, **kwargs)
    fields = _CALL.get()
    if fields:
        # One attribute, not one per field: a plugin's own `extra={"function": ...}`
        # must not collide with ours (logging refuses to overwrite record attributes).
        record.wrapgate = fields
    scrubbers = _scrubbers()
    record._wrapgate_scrubbers = scrubbers
    _mask(record, scrubbers)
    return record


def _mask(record: logging.LogRecord, scrubbers: tuple[Scrubber, ...]) -> None:
    """Mask the message and traceback where the record is made, so that a plugin's own
    handler, which the gateway does not format, never sees a secret either."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - arguments that do not fit: logging would print them raw
        message = f"{record.msg} (the log call's arguments did not fit its message)"
    if record.name.startswith("gunicorn"):
        message = strip_query(message)
    if not any(scrubbers):
        record.msg, record.args = message, None
        return
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    record.exc_info = None  # only the masked text of the traceback is kept
    for scrubber in scrubbers:
        message = scrubber.scrub(message)
        record.exc_text = scrubber.scrub(record.exc_text)
    record.msg, record.args = message, None


def _scrubbers_of(record: logging.LogRecord) -> tuple[Scrubber, ...]:
    # A record made before configure() (or by hand) carries none: mask it with everything.
    return getattr(record, "_wrapgate_scrubbers", None) or RECENT.outside()


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


_NUMBERS = (int, float)


def _flat_text(entry: dict[str, Any]) -> str | None:
    """Every key and value of ``entry`` in one string (numbers as :meth:`Scrubber.scrub_value`
    reads them), or None when a value is not a plain string, number, bool or None.

    A secret in any of them is in this string too; a match across two of them only
    sends the line the slow way, which masks exactly."""
    parts = list(entry)
    for value in entry.values():
        kind = type(value)
        if kind is str:
            parts.append(value)
        elif kind in _NUMBERS:
            parts.append(str(value))
        elif value is not None and kind is not bool:
            return None
    return "\0".join(parts)


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
        scrubbers = _scrubbers_of(record)
        flat = _flat_text(entry)
        if flat is not None and not any(scrubber.finds(flat) for scrubber in scrubbers):
            # The common line: flat values and no secret in any key or value, so the
            # masking below would change nothing (a line: 28 us before, 7 us).
            return orjson.dumps(entry).decode()
        text = orjson.dumps(entry, default=str)
        # Every field, a plugin's `extra` included: as JSON values (objects as their
        # str()), then masked, so the line stays valid JSON.
        plain = orjson.loads(text)
        for scrubber in scrubbers:
            plain = scrubber.scrub_value(plain)
        return orjson.dumps(plain).decode()


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = _extra(record)
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        for scrubber in _scrubbers_of(record):
            text = scrubber.scrub(text)
        return text


def configure(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Route every logger (the core's, plugins', libraries') through one handler."""
    target = stream or sys.stderr
    # Never into a captured stream: its lines would come back as records.
    handler = logging.StreamHandler(target.original if isinstance(target, _LineLog) else target)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    logging.setLogRecordFactory(_make_record)
    # The gateway owns the root logger: a handler someone else put there (gunicorn's
    # logging config does) would write every record a second time, in its own format.
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class _LineLog:
    """A text stream whose lines become log records: a worker's stray ``print`` and
    writes to ``sys.stderr`` come out as JSON lines, masked like any record. Lines are
    put together per thread (per greenlet under gevent) before they are logged, so a
    secret written in pieces is masked whole."""

    def __init__(self, logger: logging.Logger, level: int, original: Any):
        self._logger, self._level, self.original = logger, level, original
        self._local = threading.local()

    def write(self, text: str) -> int:
        local = self._local
        if getattr(local, "busy", False):
            # logging reporting its own failure: straight out, but masked.
            for scrubber in RECENT.outside():
                text = scrubber.scrub(text)
            return self.original.write(text)
        buffer = getattr(local, "buffer", "") + text
        *lines, local.buffer = buffer.split("\n")
        local.busy = True
        try:
            for line in lines:
                if line.strip():
                    self._logger.log(self._level, "%s", line)
        finally:
            local.busy = False
        return len(text)

    def flush(self) -> None:
        try:
            buffered = getattr(self._local, "buffer", "")
            if buffered:
                self._local.buffer = ""
                self.write(buffered + "\n")
        except RuntimeError:
            # At interpreter exit gevent's locals are gone ("greenlet is being
            # finalized"); a flush that raises there makes the exit status 120.
            pass

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno...: the original stream's
        return getattr(self.original, name)


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("gateway.thread").error(
        "uncaught exception in thread %s",
        thread,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )


def capture_output() -> None:
    """Make every line a worker writes a JSON log record, masked: ``warnings``,
    ``print`` and writes to ``sys.stdout``/``sys.stderr``, uncaught exceptions of
    threads and greenlets. gunicorn calls this in each worker, after the app is
    built (``post_worker_init``). Writes below Python (a C library writing to file
    descriptor 2) are not captured."""
    logging.captureWarnings(True)
    if not isinstance(sys.stdout, _LineLog):
        sys.stdout = _LineLog(logging.getLogger("gateway.stdout"), logging.INFO, sys.stdout)
    if not isinstance(sys.stderr, _LineLog):
        sys.stderr = _LineLog(logging.getLogger("gateway.stderr"), logging.WARNING, sys.stderr)
    threading.excepthook = _thread_exception
    if "gevent" in sys.modules:
        import gevent

        def print_exception(hub: Any, context: Any, kind: Any, value: Any, tb: Any) -> None:
            logging.getLogger("gateway.greenlet").error(
                "uncaught exception in greenlet %s", context, exc_info=(kind, value, tb)
            )

        # On the class: plugin calls run on a thread pool, and each of its threads has a
        # hub of its own, whose greenlets' exceptions must be logged the same way.
        gevent.hub.Hub.print_exception = print_exception
