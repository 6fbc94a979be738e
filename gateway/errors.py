"""Every outcome that is not a plain result, and the one shape they take on the wire.

Plugins raise these (or any other exception); the core turns each into
``{"errors": [{"code": ..., "message": ...}]}`` in one place, :func:`shape`.

This module sits at the bottom of the core: it imports nothing of ``gateway``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class GatewayError(Exception):
    """Base of every error the gateway answers on purpose.

    ``status`` is the HTTP status of the answer, ``code`` the machine-readable
    code of the error entry. Subclasses set both; an instance may override them.
    ``errors`` carries several entries when one failure has many causes (every
    failed field of a request, say).
    """

    status = 422
    code = "error"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        errors: Iterable[dict] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self._errors = list(errors) if errors is not None else None

    @property
    def errors(self) -> list[dict[str, str]]:
        if self._errors is not None:
            return self._errors
        return [{"code": self.code, "message": self.message}]


# -- Errors a plugin raises -------------------------------------------------


class CredentialsRefused(GatewayError):
    """The external system refused the connection's credentials.

    Raised from ``ping``: the gateway answers ``{"statusCode": 401, "errors": [...]}``
    (status 200), which takes the connection offline in integrator.io.
    Raised from ``export``: the page answers ``connectionOffline: true``.
    Raised from ``import``: every record of the batch answers ``statusCode: 401``.
    """

    code = "unauthorized"


class ConnectionOffline(GatewayError):
    """The external system cannot be reached (network down, host unknown, timeout).

    Handled like :class:`CredentialsRefused`: ping 401, export
    ``connectionOffline: true``, import 401 for every record.
    """

    code = "connection_offline"


class RecordError(GatewayError):
    """One record is bad. Put it in an import result entry with ``statusCode`` 422
    (see :func:`record_result`); raised from a whole call it fails the call."""

    code = "invalid_record"


class InvalidConfiguration(GatewayError):
    """The export's or import's ``configuration`` cannot work with the external
    system (a column, table or path that is not there...): fails the call, 422."""

    code = "invalid_configuration"


class UnexpectedAnswer(GatewayError):
    """The external system answered what the connector cannot use (not JSON, no
    array where records were expected, a next-page link to another host): 422.
    Use it rather than inventing an HTTP status the system never sent."""

    code = "unexpected_answer"


# -- Errors the core raises -------------------------------------------------


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"

    def __init__(self):
        # Exactly the reference's answer, header included.
        super().__init__("Invalid system token.", headers={"WWW-Authenticate": "invalid system token"})


class InvalidRequest(GatewayError):
    """The extension options (or a plugin's declared sections) failed validation."""

    code = "invalid_field"


class FunctionNotFound(GatewayError):
    code = "invalid_function"

    def __init__(
        self, message: str = "The function passed in the extension options doesn't map to a function."
    ):
        super().__init__(message)


class ConnectorUnavailable(GatewayError):
    """The connector is installed but failed to load; ``message`` says why."""

    code = "connector_unavailable"


class InvalidResponse(GatewayError):
    code = "invalid_extension_response"

    def __init__(self, message: str = "Extension response is not serializable."):
        super().__init__(message)


class ResponseTooLarge(GatewayError):
    code = "response_size_exceeded"

    def __init__(self, limit: int):
        super().__init__(f"response stream exceeded limit of {limit} bytes.")


class DeadlineExceeded(GatewayError):
    status = 504
    code = "deadline_exceeded"


class ConcurrencyLimitExceeded(GatewayError):
    status = 429
    code = "concurrency_limit_exceeded"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class LimiterUnavailable(GatewayError):
    status = 503
    code = "limiter_unavailable"


class Overloaded(GatewayError):
    """This worker already runs as many calls as it may (``WRAPGATE_MAX_IN_FLIGHT``)."""

    status = 503
    code = "overloaded"


class ConfigurationError(Exception):
    """The gateway cannot start with this configuration; the message says why."""


# -- The one place errors are shaped ---------------------------------------


def entry_from_exception(exc: BaseException) -> dict[str, str]:
    """``{"code", "message"}`` of any exception, as the reference shapes a
    function's error (``err.code || err.name``, ``err.message``): its own
    ``code`` attribute when it is a non-empty string, else its ``name``
    attribute, else its class name; its ``message`` attribute when it is a
    string, else its text; nothing else from it."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        code = getattr(exc, "name", None)
    if not isinstance(code, str) or not code:
        code = type(exc).__name__
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        message = str(exc)
    return {"code": code, "message": message}


def shape(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) of the answer for ``exc``: the one place an
    ``{"errors": [...]}`` body is made. Every entry's code and message are text,
    whatever a plugin put in them, so the body always serialises."""
    if isinstance(exc, GatewayError):
        entries = [_text_entry(entry) for entry in exc.errors] or [{"code": exc.code, "message": exc.message}]
        return exc.status, {"errors": entries}, exc.headers
    return 422, {"errors": [entry_from_exception(exc)]}, {}


def _text_entry(entry: Any) -> dict[str, str]:
    if not isinstance(entry, dict):
        return {"code": "error", "message": str(entry)}
    shaped = dict(entry)
    shaped["code"] = str(entry.get("code") or "error")
    shaped["message"] = str(entry.get("message", ""))
    return shaped


def connection_failed(kind: str, exc: BaseException, records: int) -> Any:
    """The wrapper answer that says "this connection does not work" (``exc`` is a
    :class:`CredentialsRefused` or :class:`ConnectionOffline`): ping 401, an
    export page with ``connectionOffline``, 401 for every record of an import."""
    entry = entry_from_exception(exc)
    if kind == "ping":
        return {"statusCode": 401, "errors": [entry]}
    if kind == "export":
        return {"data": [], "errors": [entry], "connectionOffline": True}
    return [{"statusCode": 401, "errors": [dict(entry)]} for _ in range(records)]


def record_result(exc: BaseException, *, record_id: str | None = None) -> dict[str, Any]:
    """An import result entry for a record that failed with ``exc``:
    401 for a refused or unreachable connection, 422 for anything else."""
    status = 401 if isinstance(exc, (CredentialsRefused, ConnectionOffline)) else 422
    entry: dict[str, Any] = {"statusCode": status, "errors": [entry_from_exception(exc)]}
    if record_id is not None:
        entry["id"] = record_id
    return entry
