"""What each failure means to integrator.io: offline only for refused credentials (issue 11)."""

import time

from options import conn, import_records


def export(call, api, path, **connection):
    return call("rest.export", {"connection": conn(api, **connection), "configuration": {"path": path}})


def test_a_403_on_one_resource_is_that_pages_error(call, api):
    status, body = export(call, api, "/forbidden")
    assert status == 422 and body["errors"] == [
        {"code": "http_403", "message": "GET /forbidden answered 403 FORBIDDEN: not your tenant"}
    ]


def test_a_403_means_refused_credentials_when_configured_so(call, api):
    status, body = export(call, api, "/forbidden", auth={"type": "bearer", "forbiddenIsAuth": True})
    assert status == 200 and body["connectionOffline"] is True


def test_a_read_timeout_is_the_pages_error_not_offline(call, api):
    status, body = export(call, api, "/slow", timeout=0.3, retries=0)
    assert status == 422 and body["errors"][0]["code"] == "timeout"
    assert "connectionOffline" not in body


def test_a_post_that_timed_out_has_an_unknown_outcome(call, api):
    status, results = call(
        "rest.import",
        {
            "connection": conn(api, timeout=0.3),
            "postMapData": [{"name": "maybe"}],
            "configuration": {"path": "/slow"},
        },
    )
    assert results[0]["statusCode"] == 422 and results[0]["errors"][0]["code"] == "unknown_outcome"
    assert "may or may not have been done" in results[0]["errors"][0]["message"]
    assert len([c for c in api.state["calls"] if c[0] == "POST"]) == 1  # never sent twice


def test_429_is_waited_out_within_the_bound_then_answered_429(call, api):
    api.fail("/items-offset", 429, times=50, retry_after=1)
    status, body = export(call, api, "/items-offset", rateLimitWait=2.5)
    assert status == 429 and body["errors"][0]["code"] == "rate_limited"
    assert 2 <= len(api.state["calls"]) <= 4  # waited 1 s twice, then gave the page back


def test_a_retry_after_beyond_the_deadline_answers_at_once(call, api):
    api.fail("/items-offset", 429, times=50, retry_after=100)  # within rateLimitWait, beyond the 60 s call
    started = time.monotonic()
    status, body = export(call, api, "/items-offset", rateLimitWait=300)
    assert status == 429 and body["errors"][0]["code"] == "rate_limited"
    assert len(api.state["calls"]) == 1 and time.monotonic() - started < 30


def test_status_rules_ignore_succeed_and_retry(call, api):
    api.fail("/items", 500, times=1)
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": [{"name": "after a 500"}, {"name": "bad", "bad": True}],
            "configuration": {
                "path": "/items",
                "idPath": "data.id",
                "order": "batch",
                "statusRules": {"5xx": "retry", "422": "success"},
            },
        },
    )
    assert results == [{"statusCode": 200, "id": "new-1"}, {"statusCode": 200}]
    assert len([c for c in api.state["calls"] if c[0] == "POST"]) == 3  # the 500 was sent again, by rule
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": [{"id": "missing"}],
            "configuration": {"method": "PATCH", "path": "/items/{id}", "statusRules": {"404": "ignore"}},
        },
    )
    assert results == [{"statusCode": 200, "id": "missing", "ignored": True}]


def test_a_fail_rule_and_an_offline_rule_on_export(call, api):
    options = {
        "connection": conn(api),
        "configuration": {"path": "/nowhere", "statusRules": {"404": "ignore"}},
    }
    assert call("rest.export", options) == (200, {"data": [], "lastPage": True})
    options["connection"]["unencrypted"]["statusRules"] = {"2xx": "fail"}
    options["configuration"] = {"path": "/me"}
    status, body = call("rest.export", options)
    assert status == 422 and body["errors"][0]["code"] == "http_200"
    options["configuration"] = {"path": "/broken", "statusRules": {"500": "offline"}}
    status, body = call("rest.export", options)
    assert body["connectionOffline"] is True


def test_an_html_error_page_gives_one_line(call, api):
    status, body = export(call, api, "/html-404")
    message = body["errors"][0]["message"]
    assert message.startswith(
        "GET /html-404 answered 404 NOT FOUND: Not Found The page you asked for is not here."
    )
    assert "<" not in message and "\n" not in message and "color" not in message and len(message) <= 260


def test_an_import_rate_limited_before_any_write_answers_429(call, api):
    api.fail("/items", 429, times=50, retry_after=1)
    records = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    status, body = import_records(call, api, records, {"path": "/items", "concurrency": 1}, rateLimitWait=1.5)
    assert status == 429 and body["errors"][0]["code"] == "rate_limited"
    assert len([c for c in api.state["calls"] if c[0] == "POST"]) == 2  # the others were not sent


def test_an_import_rate_limited_after_a_write_answers_per_record(call, api):
    api.fail("/items/b", 429, times=50, retry_after=1)
    records = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    configuration = {"method": "PUT", "path": "/items/{id}", "order": "batch"}
    status, results = import_records(call, api, records, configuration, rateLimitWait=0.5)
    assert status == 200 and results[0] == {"statusCode": 200, "id": "a"}
    assert [r["errors"][0]["code"] for r in results[1:]] == ["rate_limited", "rate_limited"]
    assert ("PUT", "/items/c?") not in api.state["calls"]


def test_a_ping_that_times_out_takes_the_connection_offline(call, api):
    status, body = call("rest.ping", {"connection": conn(api, pingPath="/slow", timeout=0.3, retries=0)})
    assert body["statusCode"] == 401 and body["errors"][0]["code"] == "connection_offline"
    assert "GET /slow was not answered" in body["errors"][0]["message"]
