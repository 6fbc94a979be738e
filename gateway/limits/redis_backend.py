"""Slots counted in Redis, across every worker of every host.

Per connection ``K`` (keys share the hash tag ``{K}``, so Redis Cluster keeps
them on one node):

* ``wrapgate:{K}:run``  - sorted set of holders, scored by lease expiry (ms);
* ``wrapgate:{K}:queue`` - sorted set of waiters, scored by arrival ticket;
* ``wrapgate:{K}:qexp``  - the same waiters, scored by expiry, so a waiter that
  died is dropped from the queue;
* ``wrapgate:{K}:wake:<id>`` - a list the waiter blocks on (BLPOP).

A waiter joins the queue and is granted a slot when it is among the first
``level - running`` waiters: first come, first served across hosts. A release
pushes to the wake lists of the waiters now allowed in; waiters also check
again once a second, which is how a slot whose holder died (and whose lease
expired) is noticed. A held lease is renewed every third of its length by one
thread per process, so a 5-minute call keeps its slot, and a crashed worker's
slot is free again within ``lease_seconds``.

Should Redis restart empty, a renewal asserts a running call's lease again:
for at most a third of ``lease_seconds`` after the restart (until every
holder's next renewal) a connection may run above its level; from then on
the running calls count again (``tests/test_limits_faults.py`` measures it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from typing import Any

from .backend import BackendDown, OnWait

log = logging.getLogger("gateway.limits.redis")

try:
    import redis
except ImportError:  # pragma: no cover - the `redis` extra is not installed
    redis = None  # type: ignore[assignment]

# Time is Redis's own (TIME), so hosts whose clocks disagree still agree on expiry.
_NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# KEYS: run, queue, qexp, seq.  ARGV: id, level, lease_ms, waiter_ms
_ACQUIRE = (
    _NOW
    + """
local run, queue, qexp, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, level = ARGV[1], tonumber(ARGV[2])
local lease, waiter = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', run, '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', qexp, '-inf', now)
for _, d in ipairs(dead) do
  redis.call('ZREM', queue, d)
  redis.call('ZREM', qexp, d)
end
if not redis.call('ZSCORE', queue, id) then
  redis.call('ZADD', queue, redis.call('INCR', seq), id)
end
redis.call('ZADD', qexp, now + waiter, id)
local free = level - redis.call('ZCARD', run)
local granted = 0
if free > 0 and redis.call('ZRANK', queue, id) < free then
  redis.call('ZREM', queue, id)
  redis.call('ZREM', qexp, id)
  redis.call('ZADD', run, now + lease, id)
  granted = 1
end
local ttl = lease * 4
for _, k in ipairs({run, queue, qexp, seq}) do redis.call('PEXPIRE', k, ttl) end
return granted
"""
)

# KEYS: run, queue, qexp.  ARGV: id, level, prefix of wake lists
_RELEASE = """
local run, queue, qexp = KEYS[1], KEYS[2], KEYS[3]
redis.call('ZREM', run, ARGV[1])
redis.call('ZREM', queue, ARGV[1])
redis.call('ZREM', qexp, ARGV[1])
local free = tonumber(ARGV[2]) - redis.call('ZCARD', run)
if free > 0 then
  for _, w in ipairs(redis.call('ZRANGE', queue, 0, free - 1)) do
    local wake = ARGV[3] .. w
    redis.call('RPUSH', wake, '1')
    redis.call('PEXPIRE', wake, 60000)
  end
end
return free
"""

# KEYS: run.  ARGV: id, lease_ms.  1 when the lease was still held, 0 when it was
# asserted again (Redis restarted empty, or the lease expired): a running call counts.
_RENEW = (
    _NOW
    + """
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 4)
if held then return 1 end
return 0
"""
)

RECHECK = 1.0  # seconds between a waiter's own checks, for slots freed by expiry


def _keys(key: str) -> tuple[str, str, str, str, str]:
    base = f"wrapgate:{{{key}}}"
    return f"{base}:run", f"{base}:queue", f"{base}:qexp", f"{base}:seq", f"{base}:wake:"


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, lease_seconds: float = 30.0):
        if redis is None:
            raise RuntimeError("the redis limiter needs the 'redis' extra: pip install 'wrapgate[redis]'")
        self.lease_ms = int(lease_seconds * 1000)
        # Short socket timeouts: an unreachable Redis must fail a call fast, not hang it.
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
        self._acquire = self.client.register_script(_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)
        self._renew = self.client.register_script(_RENEW)
        self._held: weakref.WeakSet[_RedisLease] = weakref.WeakSet()
        self._renewer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._url = url
        self._main = threading.get_native_id()
        #: clients of other OS threads (plugins' request permits), by native thread id
        self._clients: dict[int, Any] = {}

    def _client(self) -> Any:
        """This OS thread's client. Plugin calls run on a pool of OS threads; under
        gevent a socket belongs to the hub of the thread that opened it, so a pooled
        connection handed from one thread to another would fail: each OS thread
        gets a client (and connection pool) of its own. Keyed by the native id,
        which gevent does not patch (its ``threading.local`` is per greenlet)."""
        ident = threading.get_native_id()
        if ident == self._main:
            return self.client
        client = self._clients.get(ident)
        if client is None:
            client = redis.Redis.from_url(
                self._url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
            )
            with self._lock:
                client = self._clients.setdefault(ident, client)
        return client

    def acquire(
        self, key: str, level: int, wait: float, brief: bool = False, on_wait: OnWait = None
    ) -> _RedisLease | None:
        run, queue, qexp, seq, wake_prefix = _keys(key)
        lease_id = uuid.uuid4().hex
        wake = wake_prefix + lease_id
        deadline = time.monotonic() + wait
        client = self._client()
        try:
            while True:
                granted = self._acquire(
                    keys=[run, queue, qexp, seq],
                    args=[lease_id, level, self.lease_ms, int(RECHECK * 3000)],
                    client=client,
                )
                if granted:
                    client.delete(wake)
                    return self._hold(key, lease_id, level, start_renewer=not brief)
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._release(keys=[run, queue, qexp], args=[lease_id, level, wake_prefix], client=client)
                    client.delete(wake)
                    return None
                # Blocks until a release wakes us, or a second passes: never spins.
                client.blpop([wake], timeout=min(RECHECK, remaining))
        except redis.RedisError as exc:
            raise BackendDown(f"redis: {exc}") from None

    def _hold(self, key: str, lease_id: str, level: int, start_renewer: bool = True) -> _RedisLease:
        lease = _RedisLease(self, key, lease_id, level)
        with self._lock:
            self._held.add(lease)
            # A brief lease is taken on a plugin's thread, where under gevent a thread
            # started would be a greenlet of that thread's hub, run only while it waits:
            # the renewer is started by the calls' own slots, taken on the worker's loop.
            if start_renewer and (self._renewer is None or not self._renewer.is_alive()):
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="wrapgate-lease-renewer", daemon=True
                )
                self._renewer.start()
        return lease

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self.lease_ms / 3000)
            with self._lock:
                leases = list(self._held)
            if not leases:
                continue
            try:
                for lease in leases:
                    if not self._renew(keys=[_keys(lease.key)[0]], args=[lease.lease_id, self.lease_ms]):
                        log.error(
                            "lease of a running call on connection %s was gone (Redis restarted "
                            "empty, or the renewal came late) and is asserted again; until then "
                            "another call may have taken its slot",
                            lease.key,
                        )
            except redis.RedisError as exc:
                log.error("renewing concurrency leases failed: %s", exc)

    def release(self, lease: _RedisLease) -> None:
        with self._lock:
            self._held.discard(lease)
        run, queue, qexp, _, wake_prefix = _keys(lease.key)
        try:
            self._release(
                keys=[run, queue, qexp],
                args=[lease.lease_id, lease.level, wake_prefix],
                client=self._client(),
            )
        except redis.RedisError as exc:
            # The lease expires by itself within lease_seconds.
            log.error("releasing a slot of connection %s failed: %s", lease.key, exc)


class _RedisLease:
    __slots__ = ("__weakref__", "_done", "backend", "key", "lease_id", "level")

    def __init__(self, backend: RedisBackend, key: str, lease_id: str, level: int):
        self.backend, self.key, self.lease_id, self.level, self._done = backend, key, lease_id, level, False

    def release(self) -> None:
        if not self._done:
            self._done = True
            self.backend.release(self)
