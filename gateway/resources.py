"""Per-connection resources for connectors: one pooled client per distinct connection.

A connector that talks to its system through a pooled client (a database
engine, an HTTP session) keeps one per distinct connection: the same settings
and secrets share a client, a changed password gets a new one, and the least
recently used are disposed beyond a bound::

    from gateway.resources import PerConnection

    ENGINES = PerConnection(lambda unencrypted, encrypted: make_engine(...), dispose=lambda e: e.dispose())
    engine = ENGINES.get(unencrypted, encrypted)

Keys are digests of the sections, so no secret is kept as a key. What is
still held when the process ends (a worker stopping, ``wrapgate call``
returning) is disposed at its exit, so that pooled connections are closed, not
dropped with the process.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import orjson

T = TypeVar("T")


class PerConnection(Generic[T]):
    def __init__(
        self,
        create: Callable[[Mapping[str, Any], Mapping[str, Any]], T],
        dispose: Callable[[T], None] = lambda resource: None,
        capacity: int = 64,
    ):
        self._create = create
        self._dispose = dispose
        self.capacity = capacity
        self._items: collections.OrderedDict[str, T] = collections.OrderedDict()
        self._lock = threading.Lock()
        _LIVE.add(self)

    @staticmethod
    def key(unencrypted: Mapping[str, Any], encrypted: Mapping[str, Any]) -> str:
        text = orjson.dumps([unencrypted, encrypted], option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(text).hexdigest()

    def get(self, unencrypted: Mapping[str, Any], encrypted: Mapping[str, Any]) -> T:
        digest = self.key(unencrypted, encrypted)
        with self._lock:
            item = self._items.get(digest)
            if item is not None:
                self._items.move_to_end(digest)
                return item
            item = self._create(unencrypted, encrypted)
            self._items[digest] = item
            evicted = []
            while len(self._items) > self.capacity:
                evicted.append(self._items.popitem(last=False)[1])
        for old in evicted:
            self._dispose(old)
        return item

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Dispose of every client held; each is tried, the first failure is raised after."""
        with self._lock:
            items, self._items = list(self._items.values()), collections.OrderedDict()
        failure: Exception | None = None
        for item in items:
            try:
                self._dispose(item)
            except Exception as exc:  # noqa: BLE001 - raised once the others are disposed
                failure = failure or exc
        if failure is not None:
            raise failure


# Every cache still alive when the interpreter exits disposes what it holds: a
# database's pooled connections were otherwise dropped with the process (the
# server logs an unexpected end of the connection) and, when the interpreter
# freed them, warned as connections deleted while open.
_LIVE: weakref.WeakSet[PerConnection[Any]] = weakref.WeakSet()


@atexit.register
def _dispose_all() -> None:
    for cache in list(_LIVE):
        try:
            cache.clear()
        except Exception:  # at exit: a connector's failed dispose must not stop the others
            logging.getLogger("gateway.resources").exception(
                "disposing of a connector's clients at exit failed"
            )
