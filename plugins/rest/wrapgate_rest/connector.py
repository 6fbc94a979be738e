"""The ``rest`` connector's hooks: ``rest.ping``, ``rest.export``, ``rest.import``.

Connection::

    "unencrypted": {"baseURI": "https://api.example.com/v2", "pingPath": "/me",
                    "auth": {"type": "bearer"}}
    "encrypted":   {"token": "..."}

Export configuration: ``{"path": "/customers", "recordsPath": "data",
"pagination": {"type": "cursor", "cursorPath": "meta.next"}}``.
Import configuration: ``{"method": "PATCH", "path": "/customers/{id}", "idField": "id"}``.
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from gateway import hookimpl
from gateway.errors import ConnectionOffline, CredentialsRefused, UnexpectedAnswer, record_result
from gateway.resources import PerConnection

from . import schemas
from .client import Api, ApiError, error_text, find

# One pooled session per distinct connection, at most 64.
APIS = PerConnection(Api, dispose=lambda api: api.session.close(), capacity=64)


@hookimpl
def wrapgate_connection_schemas():
    return {"unencrypted": schemas.Unencrypted(), "encrypted": schemas.Encrypted()}


@hookimpl
def wrapgate_configuration_schema(function):
    return schemas.ImportConfiguration() if function == "import" else schemas.ExportConfiguration()


@hookimpl
def wrapgate_ping(unencrypted, encrypted):
    api = APIS.get(unencrypted, encrypted)
    response = api.request("GET", api.url(unencrypted["pingPath"]))
    if response.status_code in (401, 403):
        raise CredentialsRefused(
            f"GET {unencrypted['pingPath']} answered {response.status_code}: {error_text(response)}"
        )
    if not response.ok:
        # The connection does not work either way; say what the API said.
        raise ConnectionOffline(
            f"GET {unencrypted['pingPath']} answered {response.status_code}: {error_text(response)}"
        )


# -- export ------------------------------------------------------------------------------


def _delta_value(milliseconds: Any, fmt: str) -> str:
    moment = datetime.datetime.fromtimestamp(float(milliseconds) / 1000, datetime.UTC)
    if fmt == "epoch_ms":
        return str(int(float(milliseconds)))
    if fmt == "epoch_s":
        return str(int(float(milliseconds) // 1000))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _records(body: Any, expression: str) -> list:
    found = find(body, expression)
    if found is None:
        return []
    if not isinstance(found, list):
        raise UnexpectedAnswer(f"recordsPath {expression!r} found {type(found).__name__}, not an array")
    return found


@hookimpl
def wrapgate_export(unencrypted, encrypted, configuration, type, delta, test, state):
    api = APIS.get(unencrypted, encrypted)
    paging = configuration["pagination"]
    state = state if isinstance(state, dict) else {}
    params: dict[str, Any] = dict(configuration["query"])
    if type == "delta" and configuration.get("delta"):
        params[configuration["delta"]["param"]] = _delta_value(
            (delta or {}).get("lastExecutionTime", 0), configuration["delta"]["format"]
        )
    url = api.url(configuration["path"])
    kind, size = paging["type"], paging["pageSize"]
    if kind == "page":
        page = int(state.get("page", paging["startPage"]))
        params.update({paging["pageParam"]: page, paging["sizeParam"]: size})
    elif kind == "offset":
        offset = int(state.get("offset", 0))
        params.update({paging["offsetParam"]: offset, paging["limitParam"]: size})
    elif kind == "cursor" and state.get("cursor"):
        params[paging["cursorParam"]] = state["cursor"]
    elif kind == "link" and state.get("url"):
        url, params = state["url"], {}  # the API's own next link carries every parameter
        if not api.same_origin(url):
            raise UnexpectedAnswer(
                "the next-page link points to another host; refusing to send credentials there"
            )
    response = api.checked("GET", url, params=params)
    try:
        body = response.json()
    except ValueError:
        raise UnexpectedAnswer(f"GET {configuration['path']} did not answer JSON") from None
    data = _records(body, configuration["recordsPath"])
    if type == "test":
        limit = int((test or {}).get("limit") or len(data) or 1)
        return {"data": data[:limit], "lastPage": True}
    next_state: dict[str, Any] | None = None
    if kind == "page" and len(data) >= size:
        next_state = {"page": page + 1}
    elif kind == "offset" and len(data) >= size:
        next_state = {"offset": offset + len(data)}
    elif kind == "cursor":
        cursor = find(body, paging["cursorPath"])
        if cursor not in (None, "", False):
            next_state = {"cursor": cursor}
    elif kind == "link":
        following = response.links.get("next", {}).get("url")
        if following:
            next_state = {"url": urllib.parse.urljoin(response.url, following)}
    result = {"data": data, "lastPage": next_state is None}
    if next_state is not None:
        result["state"] = next_state
    return result


# -- import -------------------------------------------------------------------------------


def _one(api, configuration: Mapping[str, Any], record: Any) -> dict:
    if not isinstance(record, dict):
        return record_result(ValueError("a record must be a JSON object"))
    path = configuration["path"]
    record_id = record.get(configuration["idField"])
    if "{id}" in path:
        if record_id in (None, ""):
            return record_result(ValueError(f"the record has no {configuration['idField']} for {path}"))
        path = path.replace("{id}", urllib.parse.quote(str(record_id), safe=""))
    try:
        response = api.request(configuration["method"], api.url(path), body=record)
    except ConnectionOffline as exc:
        return record_result(exc)
    if response.status_code in (401, 403):
        return record_result(CredentialsRefused(f"{response.status_code}: {error_text(response)}"))
    if response.status_code >= 400:
        return record_result(ApiError(response.status_code, error_text(response)))
    found = None
    try:
        found = find(response.json(), configuration["idPath"])
    except (ValueError, requests.JSONDecodeError):
        pass  # 204 No Content and friends: the record's own id stands
    found = found if found is not None else record_id
    entry: dict[str, Any] = {"statusCode": 200}
    if found is not None:
        entry["id"] = str(found)
    return entry


@hookimpl
def wrapgate_import(unencrypted, encrypted, configuration, postMapData):
    api = APIS.get(unencrypted, encrypted)
    if not postMapData:
        return []
    # Records go out concurrently, at most `concurrency` at once; results keep their order.
    with ThreadPoolExecutor(max_workers=min(configuration["concurrency"], len(postMapData))) as pool:
        return list(pool.map(lambda record: _one(api, configuration, record), postMapData))
