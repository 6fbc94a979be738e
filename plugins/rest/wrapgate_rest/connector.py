"""The ``rest`` connector's hooks: ``rest.ping``, ``rest.export``, ``rest.import``.

Connection::

    "unencrypted": {"baseURI": "https://api.example.com/v2", "pingPath": "/me",
                    "auth": {"type": "bearer"}}
    "encrypted":   {"token": "..."}

Export configuration: ``{"path": "/customers", "recordsPath": "data",
"pagination": {"type": "cursor", "cursorPath": "meta.next"}}``.
Import configuration: ``{"method": "PATCH", "path": "/customers/{id}", "idField": "id"}``.
The plugin's README lists every setting.

Every request of a call goes through a :class:`~wrapgate_rest.client.Caller`:
within the connection's concurrency level, 429 waited out within a bound,
the answer classified by the status rules.
"""

from __future__ import annotations

import datetime
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from gateway import hookimpl
from gateway.errors import ConnectionOffline, CredentialsRefused, GatewayError, UnexpectedAnswer
from gateway.resources import PerConnection

from . import schemas
from .client import Api, ApiError, Caller, RequestTimeout, describe, find, truthy
from .imports import write
from .inflight import level_of
from .paging import following, request_for

#: The plugin contract this connector is written against (gateway.CONTRACT_VERSION).
WRAPGATE_CONTRACT = 1

# One pooled session per distinct connection, at most 64.
APIS = PerConnection(Api, dispose=lambda api: api.session.close(), capacity=64)


class UnsupportedExport(GatewayError):
    """integrator.io asked for an export type the configuration cannot serve."""

    code = "unsupported_export_type"


@hookimpl
def wrapgate_connection_schemas():
    return {"unencrypted": schemas.Unencrypted(), "encrypted": schemas.Encrypted()}


@hookimpl
def wrapgate_configuration_schema(function):
    return schemas.ImportConfiguration() if function == "import" else schemas.ExportConfiguration()


def caller(connection, unencrypted, encrypted, context, rules: Mapping[str, str]) -> Caller:
    api = APIS.get(unencrypted, encrypted)
    key = (connection or {}).get("_id") or PerConnection.key(unencrypted, encrypted)
    deadline = getattr(context, "deadline", 0.0) or time.monotonic() + 300
    # The core counts permits when it limits the connection (context.level set);
    # else the connector's own in-process gate bounds the requests.
    permit = getattr(context, "permit", None) if getattr(context, "level", None) is not None else None
    return Caller(api, str(key), level_of(connection, context), rules, deadline, permit)


@hookimpl
def wrapgate_ping(connection, unencrypted, encrypted, context):
    call = caller(connection, unencrypted, encrypted, context, {})
    url = call.api.url(unencrypted["pingPath"])
    try:
        action, response = call.request("GET", url)
    except RequestTimeout as exc:
        raise ConnectionOffline(exc.message) from None
    if action == "offline" or response.status_code in (401, 403):
        raise CredentialsRefused(describe("GET", url, response))
    if action not in ("success", "ignore"):
        # The connection does not work either way; say what the API said.
        raise ConnectionOffline(describe("GET", url, response))


# -- export ------------------------------------------------------------------------------


def _delta_value(milliseconds: Any, fmt: str) -> str:
    if fmt == "epoch_ms":
        return str(int(float(milliseconds)))
    if fmt == "epoch_s":
        return str(int(float(milliseconds) // 1000))
    moment = datetime.datetime.fromtimestamp(float(milliseconds) / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _records(body: Any, expression: str) -> list:
    found = find(body, expression)
    if found is None:
        return []
    if not isinstance(found, list):
        raise UnexpectedAnswer(f"recordsPath {expression!r} found {type(found).__name__}, not an array")
    return found


def _refuse_unsupported(kind: str | None, configuration: Mapping[str, Any], once: Any) -> None:
    """Every type integrator.io sends is served or refused: never silently all records."""
    if kind in (None, "", "test"):
        return
    if kind == "delta" and not configuration["delta"]:
        raise UnsupportedExport(
            "type delta needs configuration.delta (the query parameter that takes the last run's time); "
            "without it every run would export everything"
        )
    if kind == "once":
        if not configuration["once"]:
            raise UnsupportedExport(
                "type once needs configuration.once (the query that selects unexported records "
                "and the request that marks one exported)"
            )
        if configuration["once"]["body"] is None and not (once or {}).get("booleanField"):
            raise UnsupportedExport("type once needs once.booleanField or configuration.once.body")
    elif kind not in ("delta",):
        raise UnsupportedExport(f"export type {kind!r} is not supported")


def _mark(call: Caller, configuration: Mapping[str, Any], once: Any, ids: list) -> list[dict]:
    """Mark records exported (type once); the errors of those that failed."""
    rule = configuration["once"]
    body = rule["body"] if rule["body"] is not None else {once["booleanField"]: True}
    errors = []
    for record_id in ids:
        url = call.api.url(rule["path"].replace("{id}", urllib.parse.quote(str(record_id), safe="")))
        try:
            action, response = call.request(rule["method"], url, body=body)
        except (ConnectionOffline, CredentialsRefused):
            raise
        except GatewayError as exc:
            errors.append(
                {"code": exc.code, "message": f"record {record_id} not marked exported: {exc.message}"}
            )
            continue
        if action == "offline":
            raise CredentialsRefused(describe(rule["method"], url, response))
        if action == "fail":
            errors.append(
                {
                    "code": f"http_{response.status_code}",
                    "message": f"record {record_id} not marked exported: "
                    + describe(rule["method"], url, response),
                }
            )
    return errors


@hookimpl
def wrapgate_export(
    connection, unencrypted, encrypted, configuration, type, delta, once, test, state, context
):
    _refuse_unsupported(type, configuration, once)
    call = caller(connection, unencrypted, encrypted, context, configuration["statusRules"])
    state = state if isinstance(state, dict) else {}
    errors: list[dict] = []
    if type == "once" and state.get("mark"):
        # integrator.io asks for the next page only once it holds this one: marking
        # now loses nothing if a page never arrives (it is exported again instead).
        errors = _mark(call, configuration, once, state["mark"])
    if type == "once" and state.get("done"):
        return {"data": [], "lastPage": True, **({"errors": errors} if errors else {})}
    params: dict[str, Any] = dict(configuration["query"])
    if type == "delta":
        params[configuration["delta"]["param"]] = _delta_value(
            (delta or {}).get("lastExecutionTime") or 0, configuration["delta"]["format"]
        )
    position = dict(state)
    if type == "once":
        params.update(configuration["once"]["query"])
        # Marked records leave the selection: the next page starts where the unmarked ones are.
        if configuration["pagination"]["type"] == "offset":
            position["offset"] = int(state.get("offset", 0)) + len(errors)
    url, params, body = request_for(call.api, configuration, position, params)
    method = configuration["method"]
    action, response = call.request(method, url, params=params, body=body)
    if action == "offline":
        raise CredentialsRefused(describe(method, url, response))
    if action == "fail":
        raise ApiError(response.status_code, describe(method, url, response))
    if action == "ignore":
        return {"data": [], "lastPage": True}
    try:
        page = response.json()
    except ValueError:
        raise UnexpectedAnswer(f"{method} {configuration['path']} did not answer JSON") from None
    raw = _records(page, configuration["recordsPath"])
    data = raw
    if configuration["recordFilter"]:
        data = [record for record in raw if truthy(find(record, configuration["recordFilter"]))]
    if type == "test":
        limit = int((test or {}).get("limit") or len(data) or 1)
        return {"data": data[:limit], "lastPage": True}
    next_state = following(call.api, configuration, position, response, page, len(raw))
    if type == "once":
        id_field = configuration["idField"]
        ids = [r[id_field] for r in raw if isinstance(r, dict) and r.get(id_field) is not None]
        if len(ids) < len(raw):
            errors.append({"code": "missing_id", "message": f"records without {id_field} cannot be marked"})
        if ids:
            if configuration["pagination"]["type"] == "offset" and next_state is not None:
                next_state["offset"] = position.get("offset", 0)
            next_state = {**(next_state or {"done": True}), "mark": ids}
    result: dict[str, Any] = {"data": data, "lastPage": next_state is None}
    if next_state is not None:
        result["state"] = next_state
    if errors:
        result["errors"] = errors
    return result


# -- import -------------------------------------------------------------------------------


@hookimpl
def wrapgate_import(connection, unencrypted, encrypted, configuration, postMapData, context):
    if not postMapData:
        return []
    call = caller(connection, unencrypted, encrypted, context, configuration["statusRules"])
    return write(call, configuration, postMapData)
