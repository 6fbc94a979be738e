"""Page positions: key values carried exactly through an export's ``state``.

integrator.io keeps ``state`` as JSON between pages, and JSON (or the
JavaScript that stores it) cannot hold every key exactly: a ``bigint`` beyond
2^53 loses digits, a ``numeric`` of 16+ digits passes through a float, a
timestamp becomes text the database then compares as text. So every value that
is not a plain JSON string, boolean or small integer travels tagged with its
kind and its exact text, e.g. ``{"datetime": "2026-01-01T00:00:00+00:00"}``,
and comes back as the very Python value the driver gave, which SQLAlchemy
binds with the column's own type.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import math
import uuid
from typing import Any

# Integers JavaScript holds exactly (Number.MAX_SAFE_INTEGER).
SAFE_INTEGER = 2**53 - 1


class BadPosition(ValueError):
    """A ``state`` this connector did not give (or a key value it cannot page on)."""

    code = "invalid_state"


def encode(value: Any) -> Any:
    """The exact JSON form of a key value."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -SAFE_INTEGER <= value <= SAFE_INTEGER else {"int": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, (bytes, memoryview)):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    raise BadPosition(f"a key of Python type {type(value).__name__} cannot carry a page position")


_DECODERS: dict[str, Any] = {
    "int": int,
    "float": float,
    "decimal": decimal.Decimal,
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "uuid": uuid.UUID,
    "bytes": lambda text: base64.b64decode(text, validate=True),
}


def decode(value: Any) -> Any:
    """The key value :func:`encode` was given."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, text),) = value.items()
            if kind in _DECODERS and isinstance(text, str):
                try:
                    return _DECODERS[kind](text)
                except (ValueError, decimal.InvalidOperation, binascii.Error):
                    pass
        raise BadPosition(f"state holds {value!r}, not a page position this connector gave")
    if isinstance(value, list):
        raise BadPosition(f"state holds {value!r}, not a page position this connector gave")
    return value
