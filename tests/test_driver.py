"""gateway.driver through the gateway's real call path (InProcessGateway), with a
connector that answers what it was asked: paging, state, repeats, the export types."""

import types

import pytest

from gateway import driver, hookimpl
from gateway.errors import ConnectionOffline
from gateway.testing import InProcessGateway


@hookimpl
def wrapgate_export(configuration, type, delta, once, test, state):
    conf = configuration or {}
    if conf.get("offline") and state == conf["offline"]:
        raise ConnectionOffline("the API went away")
    page = state or {"n": 0}  # a JSON object as state: it must come back equal
    n = page["n"]
    asked = {"type": type, "delta": delta, "once": once, "test": test}
    if conf.get("repeat"):
        return {"data": [asked], "lastPage": False, "state": page}  # never moves on
    last = n + 1 >= conf.get("pages", 1)
    return {"data": [dict(asked, n=n)], "lastPage": last, "state": None if last else {"n": n + 1}}


@hookimpl
def wrapgate_import(postMapData):
    return [
        {"statusCode": 422, "errors": [{"code": "bad", "message": "no"}]} if r.get("bad") else {"statusCode": 200, "id": str(r["id"])}
        for r in postMapData
    ]  # fmt: skip


@pytest.fixture(scope="module")
def call():
    plugin = types.ModuleType("echo")
    plugin.wrapgate_export, plugin.wrapgate_import = wrapgate_export, wrapgate_import
    return InProcessGateway({"echo": plugin}).call


def read_all(call, configuration, max_pages=50, **kwargs):
    summary = driver.ReadSummary()
    options = driver.export_options({"_id": "c"}, configuration, **kwargs)
    return list(driver.read(call, "echo.export", options, summary, max_pages=max_pages)), summary


def test_state_goes_back_until_the_last_page(call):
    pages, summary = read_all(call, {"pages": 4})
    assert [p["data"][0]["n"] for p in pages] == [0, 1, 2, 3]
    assert (summary.pages, summary.records, summary.problem) == (4, 4, None)


@pytest.mark.parametrize(
    "kwargs, asked",
    [
        ({}, {"type": None, "delta": None, "once": None, "test": None}),
        (
            {"type": "delta", "date_field": "updated", "since_ms": 1700000000000},
            {"type": "delta", "delta": {"dateField": "updated", "lastExecutionTime": 1700000000000}},
        ),
        (
            {"type": "once", "boolean_field": "exported"},
            {"type": "once", "once": {"booleanField": "exported"}},
        ),
        ({"type": "test", "limit": 3}, {"type": "test", "test": {"limit": 3}}),
        ({"type": "test"}, {"type": "test", "test": {"limit": 1}}),
    ],
)
def test_each_export_type_is_sent_as_integrator_io_sends_it(call, kwargs, asked):
    pages, _ = read_all(call, {}, **kwargs)
    got = pages[0]["data"][0]
    assert {k: got[k] for k in asked} == asked


def test_the_same_page_a_sixth_time_stops_the_export(call):
    pages, summary = read_all(call, {"repeat": True})
    assert len(pages) == 5 and summary.pages == 6
    assert summary.problem.startswith("the same page came back 6 times (page 6)")


def test_connection_offline_stops_the_export_with_its_errors(call):
    pages, summary = read_all(call, {"pages": 5, "offline": {"n": 2}})
    assert len(pages) == 2
    assert summary.problem == "connectionOffline: connection_offline: the API went away"
    assert summary.errors == [{"code": "connection_offline", "message": "the API went away"}]


def test_max_pages_bounds_an_endless_export(call):
    pages, summary = read_all(call, {"pages": 100}, max_pages=3)
    assert len(pages) == 3 and summary.problem == "no last page after 3 pages (--max-pages)"


def test_write_numbers_outcomes_across_batches(call):
    records = [{"id": 1}, {"id": 2, "bad": True}, {"id": 3}, {"id": 4}, {"id": 5}]
    outcomes = list(driver.write(call, "echo.import", {"connection": {}}, records, batch=2))
    assert [(o["index"], o["statusCode"]) for o in outcomes] == [
        (0, 200),
        (1, 422),
        (2, 200),
        (3, 200),
        (4, 200),
    ]
    assert [o.get("id") for o in outcomes] == ["1", None, "3", "4", "5"]


@pytest.mark.parametrize(
    "status, answer, why",
    [
        (200, {"statusCode": 200}, None),
        (200, {"statusCode": 401, "errors": [{"code": "unauthorized", "message": "no"}]}, "statusCode 401: unauthorized: no"),
        (200, {"data": [], "connectionOffline": True}, "connectionOffline: no errors given"),
        (200, {"data": [], "lastPage": True}, None),
        (200, [{"statusCode": 200}, {"statusCode": 422}], "1 of 2 records failed"),
        (422, {"errors": [{"code": "invalid_function", "message": "x"}]}, "HTTP 422: invalid_function: x"),
    ],
)  # fmt: skip
def test_failure_judges_answers_that_are_200_on_the_wire(status, answer, why):
    assert driver.failure(status, answer) == why
