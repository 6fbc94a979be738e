"""Driving wrapper functions as integrator.io does: ping, page an export, send import batches.

The ``wrapgate check/read/write`` commands and the conformance suite use it,
in-process (:func:`in_process`, the gateway's own call path) or against a
deployed gateway (:func:`over_http`). A *caller* is any function
``(wire_name, options) -> (status, answer)``.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import serialize

Caller = Callable[[str, dict[str, Any]], tuple[int, Any]]

#: integrator.io stops an export that answers the same page more than this many times.
SAME_PAGE_LIMIT = 5


def in_process(gateway: Any) -> Caller:
    """A caller through :meth:`gateway.calls.Gateway.call`: no HTTP, no token."""

    def call(function: str, options: Mapping[str, Any]) -> tuple[int, Any]:
        body = {"diy": True, "type": "wrapper", "function": function, "options": dict(options)}
        answer = gateway.call(body, request_id="cli")
        return answer.status, serialize.loads(answer.body)

    return call


def over_http(url: str, token: str, timeout: float = 330) -> Caller:
    """A caller of ``POST <url>/function`` with the system token, as integrator.io calls.

    The default timeout is above the gateway's 5-minute call deadline, so a slow
    call gets the gateway's own answer rather than a client timeout.
    """
    endpoint = url.rstrip("/") + "/function"

    def call(function: str, options: Mapping[str, Any]) -> tuple[int, Any]:
        body = {"diy": True, "type": "wrapper", "function": function, "options": dict(options)}
        request = urllib.request.Request(
            endpoint,
            data=serialize.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())

    return call


def get_json(url: str, token: str | None, timeout: float = 30) -> tuple[int, Any]:
    """``GET`` a JSON route of a deployed gateway (``/plugins``)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())


def _json(data: bytes) -> Any:
    try:
        return serialize.loads(data)
    except ValueError:
        text = data[:200].decode(errors="replace")
        return {"errors": [{"code": "not_json", "message": f"the answer is not JSON: {text!r}"}]}


# -- judging answers ----------------------------------------------------------


def failure(status: int, answer: Any) -> str | None:
    """Why an answer is a failure, in words; None when it is a success.

    Not only non-200 answers fail: a ping answering ``statusCode`` 401, an
    export page with ``connectionOffline``, an import entry other than 200.
    """
    if status != 200:
        return f"HTTP {status}: {_errors(answer)}"
    if isinstance(answer, dict) and "statusCode" in answer and answer["statusCode"] != 200:
        return f"statusCode {answer['statusCode']}: {_errors(answer)}"
    if isinstance(answer, dict) and answer.get("connectionOffline"):
        return f"connectionOffline: {_errors(answer)}"
    if isinstance(answer, list):
        failed = [e for e in answer if not isinstance(e, dict) or e.get("statusCode") != 200]
        if failed:
            return f"{len(failed)} of {len(answer)} records failed"
    return None


def _errors(answer: Any) -> str:
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if not errors:
        return "no errors given"
    return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))


#: What to look at, by error code, when a ping fails.
HINTS = {
    "unauthorized": "the system refused the credentials: check the connection's encrypted section",
    "connection_offline": "the system could not be reached: check the host or URL in the unencrypted "
    "section, and that this machine can reach it",
    "invalid_field": "the connection does not fit the connector's schema: `wrapgate spec <connector>` lists "
    "its fields",
    "invalid_function": "no such function: `wrapgate plugins` lists the functions served",
    "connector_unavailable": "the connector is installed but failed to load: `wrapgate plugins` says why",
}


def hint(answer: Any) -> str | None:
    """A plain next step for the first error of a failed answer, when its code is a known one."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    code = errors[0].get("code") if errors and isinstance(errors[0], dict) else None
    return HINTS.get(code) if isinstance(code, str) else None


# -- ping ---------------------------------------------------------------------


def check(call: Caller, function: str, connection: Mapping[str, Any]) -> tuple[str | None, Any]:
    """Ping once: (why it failed or None, the answer)."""
    status, answer = call(function, {"connection": dict(connection)})
    return failure(status, answer), answer


# -- export -------------------------------------------------------------------


@dataclass
class ReadSummary:
    pages: int = 0
    records: int = 0
    seconds: float = 0.0
    #: why the export stopped early (None when it reached its last page)
    problem: str | None = None
    errors: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.problem is None,
            "pages": self.pages,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "problem": self.problem,
            "errors": self.errors,
        }


def read(
    call: Caller,
    function: str,
    options: Mapping[str, Any],
    summary: ReadSummary,
    max_pages: int = 10_000,
) -> Iterator[dict[str, Any]]:
    """Yield each page of an export in order, filling ``summary`` as it goes.

    ``state`` goes back unchanged, through JSON as over the wire; the export
    stops on ``lastPage``, on ``connectionOffline``, on an error answer, when
    the same page comes back more than :data:`SAME_PAGE_LIMIT` times, or
    after ``max_pages`` (integrator.io has no such bound; a command line should).
    """
    started = time.monotonic()
    seen: dict[str, int] = {}
    state = None
    try:
        for _ in range(max_pages):
            status, page = call(function, dict(options, state=state))
            why = failure(status, page)
            if why is not None:
                summary.problem = why
                if isinstance(page, dict):
                    summary.errors.extend(page.get("errors") or [])
                return
            summary.pages += 1
            summary.records += len(page["data"])
            summary.errors.extend(page.get("errors") or [])
            digest = hashlib.sha256(serialize.dumps(page)).hexdigest()
            seen[digest] = seen.get(digest, 0) + 1
            if seen[digest] > SAME_PAGE_LIMIT:
                summary.problem = (
                    f"the same page came back {seen[digest]} times (page {summary.pages}): "
                    "integrator.io stops such an export as an infinite loop; "
                    "return a new state with each page and lastPage: true on the last"
                )
                return
            yield page
            if page.get("lastPage"):
                return
            # What integrator.io sends back is the JSON it received, not the Python object.
            state = json.loads(json.dumps(page.get("state")))
        summary.problem = f"no last page after {max_pages} pages (--max-pages)"
    finally:
        summary.seconds = time.monotonic() - started


def export_options(
    connection: Mapping[str, Any],
    configuration: Any = None,
    type: str | None = None,
    date_field: str | None = None,
    since_ms: int | None = None,
    boolean_field: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """An export's options as integrator.io sends them for each ``type``."""
    options: dict[str, Any] = {"connection": dict(connection), "configuration": configuration}
    if type is not None:
        options["type"] = type
    if type == "delta":
        options["delta"] = {"dateField": date_field, "lastExecutionTime": since_ms}
    elif type == "once":
        options["once"] = {"booleanField": boolean_field}
    elif type == "test":
        options["test"] = {"limit": limit if limit is not None else 1}
    return options


# -- import -------------------------------------------------------------------


def batches(records: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def write(
    call: Caller,
    function: str,
    options: Mapping[str, Any],
    records: list[Any],
    batch: int = 100,
) -> Iterator[dict[str, Any]]:
    """Send ``records`` in batches; yield one outcome per record, in order:
    the import's entry with the record's ``index``, or the call's error."""
    index = 0
    for chunk in batches(records, batch):
        status, answer = call(function, dict(options, postMapData=chunk, preMapData=chunk))
        if status == 200 and isinstance(answer, list) and len(answer) == len(chunk):
            entries = answer
        else:
            # The whole batch failed: every one of its records says so.
            errors = answer.get("errors") if isinstance(answer, dict) else None
            entries = [{"statusCode": status, "errors": errors or []} for _ in chunk]
        for entry in entries:
            yield {"index": index, **(entry if isinstance(entry, dict) else {"statusCode": None})}
            index += 1
