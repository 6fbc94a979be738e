"""Requests to a connection's API, and what each answer means.

:class:`Api` is the pooled session of one connection (kept across calls).
:class:`Caller` sends one call's requests through it: each holds one of the
connection's request permits (the core's ``context.permit()``, else the
in-process gate: :mod:`wrapgate_rest.inflight`), waits out 429 within a bound, and is classified
by the status rules into one action: ``success``, ``fail``, ``ignore``,
``offline`` (refused credentials) or ``retry``.

Failures the API did not answer are told apart: a connection that cannot be
opened is :class:`ConnectionOffline`; a read timeout is that request's error,
and for a POST or PATCH an :class:`UnknownOutcome` (the API may have acted).
urllib3's Retry retries 5xx only on idempotent methods: a POST or PATCH is
never sent twice after a 5xx.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import html.parser
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import jmespath
import orjson
import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gateway.errors import ConnectionOffline, GatewayError

from .auth import Credentials, render_headers
from .inflight import GATES


class _Retry(Retry):
    # 429 is waited out by Caller, within a bound and the call's deadline; urllib3 would sleep any Retry-After.
    RETRY_AFTER_STATUS_CODES = frozenset({413, 503})


class ApiError(GatewayError):
    """The API answered with an error; ``code`` is ``http_<status>``."""

    def __init__(self, http_status: int, message: str):
        super().__init__(message, code=f"http_{http_status}")
        self.http_status = http_status


class RequestTimeout(GatewayError):
    """The API took longer than ``timeout`` to answer a request that is safe to send again."""

    code = "timeout"


class UnknownOutcome(GatewayError):
    """A write was sent but its answer never came: the API may or may not have done it."""

    code = "unknown_outcome"


class RateLimited(GatewayError):
    """The API kept answering 429 beyond the wait bound or the call's deadline:
    answered 429 with ``Retry-After`` so integrator.io asks again later."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})
        self.retry_after = retry_after


@functools.lru_cache(maxsize=256)
def path_expression(expression: str):
    return jmespath.compile(expression)


def find(body: Any, expression: str) -> Any:
    return path_expression(expression).search(body)


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, "", [] and {} are false."""
    return value not in (None, False, "", [], {})


class _Text(html.parser.HTMLParser):
    """The visible words of an HTML error page."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._hidden += tag in ("script", "style", "head")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style", "head") and self._hidden > 0

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words.extend(data.split())


def error_text(response: requests.Response, limit: int = 200) -> str:
    """The API's own words on one line: a JSON body's message/error field, the
    visible text of an HTML page, else the body's text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return _line(value, limit)
    text = response.text or ""
    if "html" in response.headers.get("Content-Type", "") or text.lstrip()[:1] == "<":
        parser = _Text()
        parser.feed(text)
        text = " ".join(parser.words)
    return _line(text, limit) or (response.reason or "")


def _line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def describe(method: str, url: str, response: requests.Response) -> str:
    """``GET /items answered 404 Not Found: <the API's words>``."""
    said = error_text(response)
    head = f"{method} {path_of(url)} answered {response.status_code} {response.reason or ''}".rstrip()
    return f"{head}: {said}" if said and said != response.reason else head


def path_of(url: str) -> str:
    # Never the query string: an API key may travel there.
    return urllib.parse.urlsplit(url).path or "/"


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class Api:
    """A connection's API: base URI, credentials, pooled session."""

    def __init__(self, unencrypted: Mapping[str, Any], encrypted: Mapping[str, Any]):
        self.base = unencrypted["baseURI"].rstrip("/")
        self.origin = urllib.parse.urlsplit(self.base)[:2]
        self.timeout = (unencrypted["connectTimeout"], unencrypted["timeout"])
        self.verify = unencrypted["verifyTLS"]
        self.settings = unencrypted
        self.credentials = Credentials(unencrypted["auth"], encrypted)
        session = self.credentials.session(self.timeout)
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
        session.headers.update(render_headers(unencrypted["headers"], encrypted))
        self.session = session

    def url(self, path: str) -> str:
        return self.base + path

    def same_origin(self, url: str) -> bool:
        return urllib.parse.urlsplit(url)[:2] == self.origin

    def public(self, url: str) -> str:
        """``url`` without the query parameters that carry credentials: what may be stored."""
        keys = self.credentials.query_keys
        parts = urllib.parse.urlsplit(url)
        if not keys or not parts.query:
            return url
        query = [
            (k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in keys
        ]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def send(self, method: str, url: str, params: Mapping[str, Any] | None, body: Any) -> requests.Response:
        """One request, credentials added now; failures the API did not answer
        become :class:`ConnectionOffline`, :class:`RequestTimeout` or :class:`UnknownOutcome`."""
        self.credentials.ready(self.session)
        merged = dict(params or {})
        merged.update(self.credentials.params())
        try:
            return self.session.request(
                method,
                self.public(url),  # a next link that echoes the key must not send it twice
                params=merged or None,
                timeout=self.timeout,
                verify=self.verify,
                data=orjson.dumps(body) if body is not None else None,
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except (requests.ConnectTimeout, requests.exceptions.RetryError) as exc:
            raise ConnectionOffline(f"{method} {path_of(url)}: {_short(exc)}") from None
        except requests.ConnectionError as exc:
            if not _unanswered(exc):
                raise ConnectionOffline(f"{method} {path_of(url)}: {_short(exc)}") from None
            unanswered: Exception = exc
        except requests.Timeout as exc:
            unanswered = exc
        if method in ("POST", "PATCH"):
            raise UnknownOutcome(
                f"{method} {path_of(url)} was sent but not answered ({_short(unanswered)}); "
                "it may or may not have been done"
            )
        raise RequestTimeout(f"{method} {path_of(url)} was not answered: {_short(unanswered)}")


def _unanswered(exc: requests.ConnectionError) -> bool:
    """The request went out and the answer did not come (read timeout, cut connection)."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError))


def _short(exc: Exception) -> str:
    text = str(exc)
    # urllib3 nests the whole pool repr; the last reason is the useful part.
    if "(Caused by " in text:
        text = text.split("(Caused by ", 1)[1].rstrip(")")
    return text[:300]


DEFAULT_RULES = {"2xx": "success", "3xx": "success", "401": "offline", "429": "retry"}


class Caller:
    """One call's requests to a connection's API.

    :param rules: status rules, the connection's overlaid with the export's or
        import's; ``404`` beats ``4xx``.
    :param deadline: ``time.monotonic()`` by which the call must answer.
    """

    def __init__(
        self,
        api: Api,
        key: str,
        level: int,
        rules: Mapping[str, str],
        deadline: float,
        permit: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ):
        self.api = api
        self.key, self.level = key, level
        self.deadline = deadline
        self._permit = permit
        #: Set once the API rate-limited this call beyond the bound: later requests are not sent.
        self.limited: RateLimited | None = None
        self.rules = dict(DEFAULT_RULES)
        if api.settings["auth"]["forbiddenIsAuth"]:
            self.rules["403"] = "offline"
        self.rules.update(api.settings["statusRules"])
        self.rules.update(rules)

    def action(self, status: int) -> str:
        return self.rules.get(str(status)) or self.rules.get(f"{status // 100}xx") or "fail"

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def slot(self) -> contextlib.AbstractContextManager[Any]:
        """One request's permit: the core's (``context.permit()``, counted across
        workers and hosts) when the core limits the connection, else this
        process's gate (:mod:`wrapgate_rest.inflight`)."""
        if self._permit is not None:
            return self._permit()
        return GATES.slot(self.key, self.level, self.remaining())

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[str, requests.Response]:
        """``(action, response)`` of one request; 429 and ``retry`` statuses are
        retried here, 401 once more after renewing an OAuth 2.0 token.

        :raises RateLimited: 429 beyond ``rateLimitWait`` or the deadline.
        """
        if self.limited is not None:
            raise self.limited
        settings = self.api.settings
        waited, retries, renewed = 0.0, 0, False
        while True:
            # Held for this one request only, never while waiting: see gateway.limits.
            with self.slot():
                response = self.api.send(method, url, params, body)
            action = self.action(response.status_code)
            if response.status_code == 401 and self.api.credentials.refreshable and not renewed:
                stale = str(response.request.headers.get("Authorization", "")).removeprefix("Bearer ")
                self.api.credentials.renew(self.api.session, stale)
                renewed = True
                continue
            if action != "retry":
                return action, response
            pause = retry_after(response)
            if response.status_code == 429:
                pause = settings["backoff"] * 2 ** min(retries, 6) if pause is None else pause
                if waited + pause > settings["rateLimitWait"] or pause >= self.remaining():
                    self.limited = RateLimited(
                        f"{method} {path_of(url)} answered 429 (rate limited); "
                        f"asked to wait {pause:.0f} s more after {waited:.0f} s",
                        pause,
                    )
                    raise self.limited
            else:
                if retries >= settings["retries"]:
                    return "fail", response
                pause = settings["backoff"] * 2**retries if pause is None else pause
                if pause >= self.remaining():
                    return "fail", response
            time.sleep(pause)
            waited += pause
            retries += 1
