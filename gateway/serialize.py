"""JSON on the wire: one serialiser for every answer, and the types it widens.

orjson writes ``datetime``, ``date``, ``time`` (ISO 8601) and ``UUID`` itself;
:func:`_widen` adds what a database driver hands a plugin: ``Decimal`` as an
exact JSON number, ``bytes`` as base64, sets as arrays. Any other object is not
serialisable and the call answers ``invalid_extension_response``.
"""

from __future__ import annotations

import base64
import decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


class NotSerialisable(TypeError):
    pass


def _widen(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise NotSerialisable(f"{value} is not a JSON number")
        # A Fragment is written as is: the exact digits, no float rounding.
        return orjson.Fragment(str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise NotSerialisable(f"object of type {type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """Serialise ``value``; raises :class:`NotSerialisable` (a TypeError) for what JSON cannot hold."""
    try:
        return orjson.dumps(value, default=_widen, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise NotSerialisable(str(exc)) from None


# UTF-8 continuation bytes (10xxxxxx) and lead bytes of 4-byte sequences (11110xxx).
_CONTINUATION = bytes(range(0x80, 0xC0))
_FOUR_BYTE_LEAD = bytes(range(0xF0, 0xF8))


def utf16_length(payload: bytes) -> int:
    """Length of UTF-8 JSON text in UTF-16 code units, as JavaScript's
    ``string.length`` counts it: one per character, two for a character outside
    the Basic Multilingual Plane (an emoji). Never more than ``len(payload)``."""
    if payload.isascii():
        return len(payload)
    characters = len(payload.translate(None, _CONTINUATION))
    astral = len(payload) - len(payload.translate(None, _FOUR_BYTE_LEAD))
    return characters + astral


def loads(data: bytes | str) -> Any:
    """Parse a request body; raises ``ValueError`` (orjson.JSONDecodeError) on bad JSON."""
    return orjson.loads(data)
