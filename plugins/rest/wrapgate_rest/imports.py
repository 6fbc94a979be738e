"""Writing an import batch: one request per record or per ``batchSize`` records.

Order: with ``order: key`` (the default) the records of one key (``orderKey``,
else ``idField``) go out one after another in the batch's order, so the later
write wins; records of different keys go out side by side, at most
``concurrency`` at once (and never beyond the connection's level, which the
:class:`~wrapgate_rest.client.Caller` enforces). ``order: batch`` sends
everything in order; ``order: none`` ignores keys.

Outcomes per record: success → 200 with the id (``idPath`` in the answer, else
the record's own); ``ignore`` → 200 ``ignored``; ``offline`` → 401; anything
else → 422 with one line saying what the API said. A write whose answer never
came is ``unknown_outcome``: it may have been done. Rate-limited beyond the
bound: the call answers 429 when nothing of the batch was written (integrator.io
sends it again later), else the records not written get ``rate_limited``.
"""

from __future__ import annotations

import contextvars
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.errors import CredentialsRefused, GatewayError, record_result

from .client import ApiError, Caller, describe, find, truthy

Result = dict[str, Any]


def _units(configuration: Mapping[str, Any], records: list, results: list) -> list[list[int]]:
    """Positions of the records each request carries; records that are not
    objects get their 422 here and go nowhere."""
    good = []
    for position, record in enumerate(records):
        if isinstance(record, dict):
            good.append(position)
        else:
            results[position] = record_result(ValueError("a record must be a JSON object"))
    size = configuration["batchSize"]
    return [good[start : start + size] for start in range(0, len(good), size)]


def _lanes(configuration: Mapping[str, Any], records: list, units: list[list[int]]) -> list[list[list[int]]]:
    """Units grouped into lanes that run one after another inside, side by side across."""
    if configuration["order"] == "batch":
        return [units] if units else []
    if configuration["order"] == "none":
        return [[unit] for unit in units]
    field = configuration["orderKey"] or configuration["idField"]
    lane_of: dict[str, int] = {}  # key -> lane index
    lanes: list[list[list[int]]] = []
    for unit in units:
        keys = {str(records[p][field]) for p in unit if records[p].get(field) not in (None, "")}
        joined = sorted({lane_of[k] for k in keys if k in lane_of})
        if not joined:
            lanes.append([])
            target = len(lanes) - 1
        else:
            # A unit holding keys of several lanes joins them: they then run in one lane, in order.
            target = joined[0]
            for other in joined[1:]:
                lanes[target].extend(lanes[other])
                lanes[other] = []
                for key, lane in lane_of.items():
                    if lane == other:
                        lane_of[key] = target
        lanes[target].append(unit)
        for key in keys:
            lane_of[key] = target
    # Merged lanes keep their units in batch order.
    return [sorted(lane, key=lambda unit: unit[0]) for lane in lanes if lane]


def write(call: Caller, configuration: Mapping[str, Any], records: list) -> list[Result]:
    results: list[Any] = [None] * len(records)
    units = _units(configuration, records, results)
    lanes = _lanes(configuration, records, units)

    def run(lane: list[list[int]]) -> None:
        for unit in lane:
            send = _one if configuration["batchSize"] == 1 else _batch
            for position, result in zip(
                unit, send(call, configuration, [records[p] for p in unit]), strict=True
            ):
                results[position] = result

    if lanes:
        # Each lane runs in a copy of the call's context: its log records then carry
        # the call's scrubber (urllib3 logs URLs, a query-string API key with them).
        contexts = [contextvars.copy_context() for _ in lanes]
        with ThreadPoolExecutor(max_workers=min(configuration["concurrency"], len(lanes))) as pool:
            list(pool.map(lambda context, lane: context.run(run, lane), contexts, lanes))
    if call.limited is not None and not any(entry["statusCode"] == 200 for entry in results):
        # Nothing was written: the whole batch can be asked again later, as a 429 says.
        raise call.limited
    return results


def _sent(call: Caller, method: str, url: str, body: Any) -> tuple[str, Any] | GatewayError:
    try:
        return call.request(method, url, body=body)
    except GatewayError as exc:
        return exc


def _failure(action: str, method: str, url: str, response: Any) -> GatewayError:
    if action == "offline":
        return CredentialsRefused(describe(method, url, response))
    return ApiError(response.status_code, describe(method, url, response))


def _one(call: Caller, configuration: Mapping[str, Any], records: list) -> list[Result]:
    (record,) = records
    path, id_field = configuration["path"], configuration["idField"]
    record_id = record.get(id_field)
    if "{id}" in path:
        if record_id in (None, ""):
            return [record_result(ValueError(f"the record has no {id_field} for {path}"))]
        path = path.replace("{id}", urllib.parse.quote(str(record_id), safe=""))
    method, url = configuration["method"], call.api.url(path)
    sent = _sent(call, method, url, record)
    if isinstance(sent, GatewayError):
        return [record_result(sent)]
    action, response = sent
    if action == "ignore":
        return [_done(record_id, ignored=True)]
    if action != "success":
        return [record_result(_failure(action, method, url, response))]
    try:
        found = find(response.json(), configuration["idPath"])
    except ValueError:
        found = None  # 204 No Content and friends: the record's own id stands
    return [_done(found if found is not None else record_id)]


def _done(record_id: Any, ignored: bool = False) -> Result:
    entry: Result = {"statusCode": 200}
    if record_id is not None:
        entry["id"] = str(record_id)
    if ignored:
        entry["ignored"] = True
    return entry


def _batch(call: Caller, configuration: Mapping[str, Any], records: list) -> list[Result]:
    """Many records in one request; the answer's ``resultsPath`` holds one result per record, in order."""
    method, url = configuration["method"], call.api.url(configuration["path"])
    body: Any = records if not configuration["batchBodyPath"] else {configuration["batchBodyPath"]: records}
    sent = _sent(call, method, url, body)
    if isinstance(sent, GatewayError):
        return [record_result(sent) for _ in records]
    action, response = sent
    if action == "ignore":
        return [_done(None, ignored=True) for _ in records]
    if action != "success":
        failure = _failure(action, method, url, response)
        return [record_result(failure) for _ in records]
    try:
        answers = find(response.json(), configuration["resultsPath"])
    except ValueError:
        answers = None
    if not isinstance(answers, list) or len(answers) != len(records):
        counted = len(answers) if isinstance(answers, list) else "no"
        unknown = GatewayError(
            f"{method} {configuration['path']} answered {counted} results at "
            f"{configuration['resultsPath']!r} for {len(records)} records; which were written is unknown",
            code="unknown_outcome",
        )
        return [record_result(unknown) for _ in records]
    results = []
    for record, answer in zip(records, answers, strict=True):
        error = find(answer, configuration["resultErrorPath"]) if configuration["resultErrorPath"] else None
        if truthy(error):
            message = error if isinstance(error, str) else str(error)
            results.append(record_result(GatewayError(message[:300], code="record_failed")))
            continue
        found = find(answer, configuration["idPath"]) if isinstance(answer, (dict, list)) else None
        results.append(_done(found if found is not None else record.get(configuration["idField"])))
    return results
