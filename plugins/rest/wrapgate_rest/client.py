"""One pooled HTTP session per connection: auth, timeouts, retries.

Every request has a (connect, read) timeout. urllib3's Retry retries 5xx on
idempotent methods and 429 on every method (the API said it did not do the
work), honouring ``Retry-After``; a POST or PATCH is never sent twice after a
5xx, since the API may have acted on it.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from typing import Any

import jmespath
import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gateway.errors import ConnectionOffline, CredentialsRefused


class ApiError(Exception):
    """The API answered with an error status; ``code`` is ``http_<status>``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.code = f"http_{status}"


class _Retry(Retry):
    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return bool(self.total)
        return super().is_retry(method, status_code, has_retry_after)


@functools.lru_cache(maxsize=256)
def path_expression(expression: str):
    return jmespath.compile(expression)


def find(body: Any, expression: str) -> Any:
    return path_expression(expression).search(body)


def error_text(response: requests.Response, limit: int = 500) -> str:
    """The API's own words: a JSON body's message/error field, else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:limit]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"][:limit]
    text = (response.text or response.reason or "").strip()
    return text[:limit] or f"HTTP {response.status_code}"


class Api:
    """A connection's API: base URI, auth, session."""

    def __init__(self, unencrypted: Mapping[str, Any], encrypted: Mapping[str, Any]):
        self.base = unencrypted["baseURI"].rstrip("/")
        self.origin = urllib.parse.urlsplit(self.base)[:2]
        self.timeout = (unencrypted["connectTimeout"], unencrypted["timeout"])
        self.verify = unencrypted["verifyTLS"]
        self.auth_params: dict[str, str] = {}
        session = requests.Session()
        retry = _Retry(
            total=unencrypted["retries"],
            backoff_factor=unencrypted["backoff"],
            backoff_max=30,
            status_forcelist=(500, 502, 503, 504),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=25)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": "wrapgate-rest"})
        session.headers.update(unencrypted["headers"])
        self._authenticate(session, unencrypted["auth"], encrypted)
        self.session = session

    def _authenticate(
        self, session: requests.Session, auth: Mapping[str, Any], encrypted: Mapping[str, Any]
    ) -> None:
        kind = auth["type"]
        if kind == "bearer":
            session.headers["Authorization"] = f"Bearer {encrypted.get('token') or ''}"
        elif kind == "basic":
            session.auth = (auth.get("username") or "", encrypted.get("password") or "")
        elif kind == "apiKey":
            if auth.get("queryParam"):
                self.auth_params[auth["queryParam"]] = encrypted.get("apiKey") or ""
            else:
                session.headers[auth["headerName"]] = encrypted.get("apiKey") or ""

    def url(self, path: str) -> str:
        return self.base + path

    def same_origin(self, url: str) -> bool:
        return urllib.parse.urlsplit(url)[:2] == self.origin

    def request(
        self, method: str, url: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> requests.Response:
        """Send one request; network failures become :class:`ConnectionOffline`."""
        merged = dict(params or {})
        merged.update(self.auth_params)
        try:
            return self.session.request(
                method,
                url,
                params=merged or None,
                timeout=self.timeout,
                verify=self.verify,
                data=orjson.dumps(body) if body is not None else None,
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except requests.exceptions.RetryError as exc:
            raise ConnectionOffline(f"{method} {_path(url)}: gave up after retries ({_short(exc)})") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ConnectionOffline(f"{method} {_path(url)}: {_short(exc)}") from None

    def checked(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """:meth:`request`, with 401/403 as refused credentials and other errors as :class:`ApiError`."""
        response = self.request(method, url, **kwargs)
        if response.status_code in (401, 403):
            raise CredentialsRefused(
                f"{method} {_path(url)} answered {response.status_code}: {error_text(response)}"
            )
        if response.status_code >= 400:
            raise ApiError(
                response.status_code,
                f"{method} {_path(url)} answered {response.status_code}: {error_text(response)}",
            )
        return response


def _path(url: str) -> str:
    # Never the query string: an API key may travel there.
    return urllib.parse.urlsplit(url).path or "/"


def _short(exc: Exception) -> str:
    text = str(exc)
    # urllib3 nests the whole pool repr; the last reason is the useful part.
    if "(Caused by " in text:
        text = text.split("(Caused by ", 1)[1].rstrip(")")
    return text[:300]
