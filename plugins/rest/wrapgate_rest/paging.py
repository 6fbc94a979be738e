"""Pagination: which request asks for a page, and what ``state`` asks for the next.

``state`` is stored by integrator.io between pages, so it holds only positions
(page, offset, cursor, next URL without credentials, records seen), never a
secret. An export ends only on the API's own end signal: an empty page, no
next cursor or link, the ``stopPath`` condition, or ``totalPath`` reached. A
short page is not an end: APIs cap the page size below the one asked for.
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests

from gateway.errors import UnexpectedAnswer

from .client import Api, find, truthy


def _place(params: dict[str, Any], body: Any, location: str, name: str, value: Any) -> None:
    if location == "query":
        params[name] = value
        return
    # A dotted name walks into the body: "variables.after" for GraphQL.
    *parents, leaf = name.split(".")
    for part in parents:
        body = body.setdefault(part, {})
    body[leaf] = value


def request_for(
    api: Api, configuration: Mapping[str, Any], state: Mapping[str, Any], params: dict[str, Any]
) -> tuple[str, dict[str, Any], Any]:
    """``(url, params, body)`` of the page ``state`` points at; ``params`` are the
    query parameters every page carries."""
    paging = configuration["pagination"]
    kind, where = paging["type"], paging["location"]
    body = copy.deepcopy(configuration["body"]) if configuration["method"] == "POST" else None
    if where == "body" and not isinstance(body, dict):
        body = {}
    url = api.url(configuration["path"])
    if kind == "page":
        _place(params, body, where, paging["pageParam"], int(state.get("page", paging["startPage"])))
        _place(params, body, where, paging["sizeParam"], paging["pageSize"])
    elif kind == "offset":
        _place(params, body, where, paging["offsetParam"], int(state.get("offset", 0)))
        _place(params, body, where, paging["limitParam"], paging["pageSize"])
    elif kind == "cursor" and state.get("cursor") is not None:
        _place(params, body, where, paging["cursorParam"], state["cursor"])
    elif kind in ("link", "nextUrl") and state.get("url"):
        url, params = state["url"], {}  # the API's own next link carries every parameter
        if not api.same_origin(url):
            raise UnexpectedAnswer(
                "the next-page link points to another host; refusing to send credentials there"
            )
    return url, params, body


def following(
    api: Api,
    configuration: Mapping[str, Any],
    state: Mapping[str, Any],
    response: requests.Response,
    body: Any,
    count: int,
) -> dict[str, Any] | None:
    """The ``state`` of the next page, or None when this page was the last.

    :param count: records on this page before any filter.
    """
    paging = configuration["pagination"]
    kind = paging["type"]
    if paging["stopPath"] and truthy(find(body, paging["stopPath"])):
        return None
    seen = int(state.get("seen", 0)) + count
    if paging["totalPath"]:
        total = find(body, paging["totalPath"])
        if isinstance(total, (int, float)) and not isinstance(total, bool) and seen >= total:
            return None
    following: dict[str, Any] | None = None
    if kind == "page" and count:
        following = {"page": int(state.get("page", paging["startPage"])) + 1}
    elif kind == "offset" and count:
        following = {"offset": int(state.get("offset", 0)) + count}
    elif kind == "cursor":
        if paging["cursorHeader"]:
            cursor: Any = response.headers.get(paging["cursorHeader"])
        else:
            cursor = find(body, paging["cursorPath"])
        # A cursor that does not move would page forever.
        if truthy(cursor) and cursor != state.get("cursor"):
            following = {"cursor": cursor}
    elif kind in ("link", "nextUrl"):
        if kind == "link":
            link = response.links.get("next", {}).get("url")
        else:
            link = find(body, paging["nextUrlPath"])
        if isinstance(link, str) and link:
            following = {"url": api.public(urllib.parse.urljoin(response.url, link))}
    if following is not None and paging["totalPath"]:
        following["seen"] = seen
    return following
