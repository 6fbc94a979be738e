"""The gateway's settings: defaults, then a TOML file, then ``WRAPGATE_*`` variables.

Every knob lives in :class:`Settings`; :func:`load` builds one and refuses a
configuration the gateway cannot serve with (:class:`ConfigurationError`).
This module sits at the bottom of the core: it imports nothing of ``gateway``
but :mod:`gateway.errors`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

MiB = 1024 * 1024
WIRE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*$")
MAX_LEVEL = 25


@dataclass(frozen=True)
class Settings:
    #: Valid system tokens; several at once let a token be rotated without downtime.
    system_tokens: tuple[str, ...] = ()
    #: Bare function names (as typed into integrator.io for an older stack) -> wire names.
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: DIY calls: True serves every loaded connector, False none, a tuple those named.
    diy: bool | tuple[str, ...] = True
    #: ``_connectorId`` -> the connectors served for that integration app.
    connector_ids: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Allowlist of entry-point names to load (None: every installed plugin).
    plugins: tuple[str, ...] | None = None
    #: Refuse to start when a plugin fails to load, instead of serving the rest.
    strict_plugins: bool = False
    #: Seconds a plugin call may run before the caller gets ``deadline_exceeded``.
    call_timeout: float = 300.0
    #: Largest request body accepted (the reference accepts 50 MB).
    max_body_bytes: int = 50 * MiB
    #: ``maxResponseSize`` when the call sends none (or 0).
    default_max_response_size: int = 5 * MiB
    # -- concurrency (gateway.limits) --
    default_level: int = 5
    levels: Mapping[str, int] = field(default_factory=dict)
    limit_wait: float = 30.0
    limiter: str = "local"  # local | redis | none
    limiter_socket: str | None = None  # set by the gunicorn master for the local backend
    redis_url: str | None = None
    limiter_failure: str = "closed"  # closed (503) | local (count in-process, loudly)
    lease_seconds: float = 30.0
    #: calls one worker runs at once (503 past it); None: 4/5 of worker_connections, so it fires
    #: before the worker's connections are full
    max_in_flight: int | None = None
    # -- operations --
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    metrics_token: str | None = None
    #: Serve /metrics and /openapi.json to everyone when no metrics token is set.
    metrics_open: bool = False
    #: Connection ids labelled per worker in /metrics; later ones count as "other".
    metrics_connections: int = 100
    #: Wrong tokens a client address may present per minute, per worker (0: no limit).
    failed_token_limit: int = 300
    #: Proxies whose X-Forwarded-For names the client (addresses, networks or "*").
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    # -- the server (gunicorn derives its settings from these: gateway.gunicorn_conf) --
    bind: str = "0.0.0.0:8000"
    #: worker processes; None: one per core the container may use (or WEB_CONCURRENCY)
    workers: int | None = None
    worker_class: str = "gateway.worker.WrapgateWorker"
    worker_connections: int = 1000
    #: seconds in-flight calls get after SIGTERM; None: call_timeout + 10
    graceful_timeout: float | None = None
    #: seconds a worker keeps serving after SIGTERM (readyz 503) before it stops accepting
    drain_delay: float = 0.0
    #: idle keep-alive seconds, above load balancers' idle timeouts
    keepalive: float = 620.0
    #: seconds from a request's first byte (or its connection's accept) to its complete headers
    header_timeout: float = 15.0
    #: longest pause, in seconds, between two reads of a request body
    body_timeout: float = 30.0
    #: a worker serves this many requests (plus up to max_requests_jitter), then is replaced; 0: never
    max_requests: int = 100_000
    max_requests_jitter: int = 10_000
    #: a worker whose resident memory passes this many MiB is replaced once its calls finish; 0: never
    max_worker_memory: int = 1024

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def in_flight_cap(self) -> int:
        """Calls one worker runs at once before answering 503 ``overloaded``."""
        return self.max_in_flight or max(1, self.worker_connections * 4 // 5)

    @property
    def worker_timeout(self) -> int:
        """Seconds gunicorn's master lets a worker's heartbeat stop: above the deadline."""
        return int(self.call_timeout) + 30

    @property
    def graceful_seconds(self) -> int:
        """Seconds a deploy gives in-flight calls: above the deadline unless set."""
        if self.graceful_timeout is not None:
            return int(self.graceful_timeout)
        return int(self.call_timeout) + 10


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in re.split(r"[\s,]+", value.strip()) if v)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _number(name: str, value: Any, kind=float, minimum: float | None = None):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value!r}")
    return number


def _read_token_file(path: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"WRAPGATE_SYSTEM_TOKEN_FILE {path!r} cannot be read: {exc.strerror}"
        ) from None
    # One token a line; blank lines and comments allow a commented secrets file.
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
    )


# Each variable: (setting, parser). The table is the reference for the README.
ENVIRONMENT = {
    "WRAPGATE_PLUGINS": ("plugins", lambda n, v: _split(v)),
    "WRAPGATE_STRICT_PLUGINS": ("strict_plugins", _bool),
    "WRAPGATE_CALL_TIMEOUT": ("call_timeout", lambda n, v: _number(n, v, float, 0.001)),
    "WRAPGATE_MAX_BODY_BYTES": ("max_body_bytes", lambda n, v: _number(n, v, int, 1)),
    "WRAPGATE_DEFAULT_LEVEL": ("default_level", lambda n, v: _number(n, v, int, 1)),
    "WRAPGATE_LIMIT_WAIT": ("limit_wait", lambda n, v: _number(n, v, float, 0)),
    "WRAPGATE_LIMITER": ("limiter", lambda n, v: v.strip().lower()),
    "WRAPGATE_LIMITER_SOCKET": ("limiter_socket", lambda n, v: v),
    "WRAPGATE_REDIS_URL": ("redis_url", lambda n, v: v or None),
    "WRAPGATE_LIMITER_FAILURE": ("limiter_failure", lambda n, v: v.strip().lower()),
    "WRAPGATE_LEASE_SECONDS": ("lease_seconds", lambda n, v: _number(n, v, float, 1)),
    "WRAPGATE_MAX_IN_FLIGHT": ("max_in_flight", lambda n, v: _number(n, v, int, 1)),
    "WRAPGATE_LOG_LEVEL": ("log_level", lambda n, v: v.strip().upper()),
    "WRAPGATE_LOG_FORMAT": ("log_format", lambda n, v: v.strip().lower()),
    "WRAPGATE_METRICS_TOKEN": ("metrics_token", lambda n, v: v or None),
    "WRAPGATE_METRICS_OPEN": ("metrics_open", _bool),
    "WRAPGATE_METRICS_CONNECTIONS": ("metrics_connections", lambda n, v: _number(n, v, int, 0)),
    "WRAPGATE_FAILED_TOKEN_LIMIT": ("failed_token_limit", lambda n, v: _number(n, v, int, 0)),
    "WRAPGATE_FORWARDED_ALLOW_IPS": ("forwarded_allow_ips", lambda n, v: _split(v)),
    "WRAPGATE_BIND": ("bind", lambda n, v: v.strip()),
    "WRAPGATE_WORKERS": ("workers", lambda n, v: _number(n, v, int, 1) if v.strip() else None),
    "WRAPGATE_WORKER_CLASS": ("worker_class", lambda n, v: v.strip()),
    "WRAPGATE_WORKER_CONNECTIONS": ("worker_connections", lambda n, v: _number(n, v, int, 1)),
    "WRAPGATE_GRACEFUL_TIMEOUT": (
        "graceful_timeout",
        lambda n, v: _number(n, v, float, 0) if v.strip() else None,
    ),
    "WRAPGATE_DRAIN_DELAY": ("drain_delay", lambda n, v: _number(n, v, float, 0)),
    "WRAPGATE_KEEPALIVE": ("keepalive", lambda n, v: _number(n, v, float, 0)),
    "WRAPGATE_HEADER_TIMEOUT": ("header_timeout", lambda n, v: _number(n, v, float, 0.1)),
    "WRAPGATE_BODY_TIMEOUT": ("body_timeout", lambda n, v: _number(n, v, float, 0.1)),
    "WRAPGATE_MAX_REQUESTS": ("max_requests", lambda n, v: _number(n, v, int, 0)),
    "WRAPGATE_MAX_REQUESTS_JITTER": ("max_requests_jitter", lambda n, v: _number(n, v, int, 0)),
    "WRAPGATE_MAX_WORKER_MEMORY": ("max_worker_memory", lambda n, v: _number(n, v, int, 0)),
}

# Platform conventions (Heroku, Cloud Run...), used when no WRAPGATE_* variable says otherwise.
CONVENTIONS = {
    "PORT": ("bind", lambda n, v: "0.0.0.0:" + str(_number(n, v, int, 1))),
    "WEB_CONCURRENCY": ("workers", lambda n, v: _number(n, v, int, 1)),
}


def _from_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigurationError(f"WRAPGATE_CONFIG {path!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"WRAPGATE_CONFIG {path!r} is not valid TOML: {exc}") from None
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known - {"system_token"})
    if unknown:
        raise ConfigurationError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    # A scalar is read by the very parser of its environment variable, so that
    # `call_timeout = "soon"` in the file is refused as WRAPGATE_CALL_TIMEOUT=soon is.
    parsers = {setting: parse for setting, parse in ENVIRONMENT.values()}
    values = {
        key: parsers[key](f"{key} in {path}", str(value).lower() if isinstance(value, bool) else str(value))
        if key in parsers and not isinstance(value, list | dict)
        else value
        for key, value in raw.items()
    }
    if "system_token" in values:
        values["system_tokens"] = [values.pop("system_token")]
    return values


def load(env: Mapping[str, str] | None = None, *, require_token: bool = True, **overrides: Any) -> Settings:
    """Settings from ``WRAPGATE_CONFIG`` (TOML), the environment, then ``overrides``.

    Raises :class:`ConfigurationError` with a message for a person when the
    result cannot be served with, first of all when no system token is set
    (``require_token=False`` is for commands that serve no HTTP).
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if env.get("WRAPGATE_CONFIG"):
        values.update(_from_file(env["WRAPGATE_CONFIG"]))
    for name, (setting, parse) in CONVENTIONS.items():
        if env.get(name) and setting not in values:
            values[setting] = parse(name, env[name])
    for name, (setting, parse) in ENVIRONMENT.items():
        if name in env:
            values[setting] = parse(name, env[name])
    tokens = list(values.get("system_tokens") or ())
    if env.get("WRAPGATE_SYSTEM_TOKEN"):
        tokens.extend(_split(env["WRAPGATE_SYSTEM_TOKEN"]))
    if env.get("WRAPGATE_SYSTEM_TOKEN_FILE"):
        tokens.extend(_read_token_file(env["WRAPGATE_SYSTEM_TOKEN_FILE"]))
    values["system_tokens"] = tokens
    values.update(overrides)
    return _checked(values, require_token)


def _checked(values: dict[str, Any], require_token: bool = True) -> Settings:
    tokens = tuple(dict.fromkeys(str(t) for t in values.get("system_tokens") or () if t))
    if not tokens and require_token:
        raise ConfigurationError(
            "no system token configured: set WRAPGATE_SYSTEM_TOKEN (or "
            "WRAPGATE_SYSTEM_TOKEN_FILE, or system_tokens in WRAPGATE_CONFIG) to the "
            "token integrator.io sends as 'Authorization: Bearer <token>'"
        )
    values["system_tokens"] = tokens
    aliases = dict(values.get("aliases") or {})
    for bare, wire in aliases.items():
        if not isinstance(wire, str) or not WIRE_NAME.match(wire):
            raise ConfigurationError(
                f"alias {bare!r} must map to a wire name '<connector>.<function>', got {wire!r}"
            )
    values["aliases"] = aliases
    diy = values.get("diy", True)
    values["diy"] = diy if isinstance(diy, bool) else tuple(diy)
    values["connector_ids"] = {str(k): tuple(v) for k, v in dict(values.get("connector_ids") or {}).items()}
    if values.get("plugins") is not None:
        values["plugins"] = tuple(values["plugins"])
    levels = {}
    for conn, level in dict(values.get("levels") or {}).items():
        if not isinstance(level, int) or isinstance(level, bool) or level < 1:
            raise ConfigurationError(f"levels.{conn} must be a whole number from 1 to 25, got {level!r}")
        levels[str(conn)] = min(level, MAX_LEVEL)
    values["levels"] = levels
    settings = Settings(**values)
    if not 1 <= settings.default_level <= MAX_LEVEL:
        raise ConfigurationError(f"default_level must be 1 to {MAX_LEVEL}, got {settings.default_level}")
    if settings.limiter not in ("local", "redis", "none"):
        raise ConfigurationError(f"limiter must be local, redis or none, got {settings.limiter!r}")
    if settings.limiter == "redis" and not settings.redis_url:
        raise ConfigurationError("limiter 'redis' needs WRAPGATE_REDIS_URL")
    if settings.limiter_failure not in ("closed", "local"):
        raise ConfigurationError(f"limiter_failure must be closed or local, got {settings.limiter_failure!r}")
    if settings.log_format not in ("json", "console"):
        raise ConfigurationError(f"log_format must be json or console, got {settings.log_format!r}")
    return settings
