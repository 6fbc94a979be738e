"""The rest connector against a real HTTP API on 127.0.0.1 (tests/api.py)."""

import pytest
from api import API_KEY, PASSWORD, RECORDS, TOKEN, USER
from options import conn, export_all

# -- ping and auth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth, secrets",
    [
        ({"type": "bearer"}, {"token": TOKEN}),
        ({"type": "basic", "username": USER}, {"password": PASSWORD}),
        ({"type": "apiKey", "headerName": "X-Api-Key"}, {"apiKey": API_KEY}),
        ({"type": "apiKey", "queryParam": "key"}, {"apiKey": API_KEY}),
    ],
)
def test_ping_with_each_auth_scheme(call, api, auth, secrets):
    assert call("rest.ping", {"connection": conn(api, auth, secrets)}) == (200, {"statusCode": 200})


def test_ping_refused_is_401_with_the_apis_reason(call, api):
    status, body = call("rest.ping", {"connection": conn(api, secrets={"token": "wrong-Token-000"})})
    assert body == {
        "statusCode": 401,
        "errors": [
            {"code": "unauthorized", "message": "GET /me answered 401 UNAUTHORIZED: invalid credentials"}
        ],
    }


def test_ping_other_failures_are_explained(call, api):
    status, body = call("rest.ping", {"connection": conn(api, pingPath="/broken", retries=0)})
    assert body["statusCode"] == 401
    assert body["errors"][0]["message"] == "GET /broken answered 500 INTERNAL SERVER ERROR: database on fire"
    status, body = call("rest.ping", {"connection": conn(api, pingPath="/nowhere")})
    assert "answered 404" in body["errors"][0]["message"]


def test_ping_of_a_closed_port_is_offline(call, api):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        c = conn(api, retries=0)
        c["unencrypted"]["baseURI"] = f"http://127.0.0.1:{s.getsockname()[1]}"
        status, body = call("rest.ping", {"connection": c})
    assert body["statusCode"] == 401 and body["errors"][0]["code"] == "connection_offline"


def test_api_key_in_the_query_never_shows_in_messages(call, api):
    c = conn(api, {"type": "apiKey", "queryParam": "key"}, {"apiKey": API_KEY}, pingPath="/nowhere")
    status, body = call("rest.ping", {"connection": c})
    assert API_KEY not in str(body) and "key=" not in str(body)


def test_credentials_in_the_base_uri_are_refused(call, api):
    c = conn(api)
    c["unencrypted"]["baseURI"] = api.url.replace("http://", "http://ada:pw@")
    status, body = call("rest.ping", {"connection": c})
    assert status == 422 and "must not hold credentials" in body["errors"][0]["message"]


# -- retries ------------------------------------------------------------------------------------


def test_503_is_retried_with_back_off(call, api):
    api.fail("/me", 503, times=2)
    assert call("rest.ping", {"connection": conn(api)})[1] == {"statusCode": 200}
    assert [c for c in api.state["calls"] if c[1].startswith("/me")].__len__() == 3


def test_429_honours_retry_after(call, api):
    import time

    api.fail("/me", 429, times=1, retry_after=1)
    started = time.monotonic()
    assert call("rest.ping", {"connection": conn(api)})[1] == {"statusCode": 200}
    assert time.monotonic() - started >= 0.9  # waited as the API asked


def test_retries_run_out(call, api):
    api.fail("/me", 503, times=10)
    status, body = call("rest.ping", {"connection": conn(api)})
    assert body["statusCode"] == 401 and "503" in body["errors"][0]["message"]
    assert len([c for c in api.state["calls"] if c[1].startswith("/me")]) == 3  # 1 + 2 retries


def test_post_is_not_repeated_after_a_5xx(call, api):
    api.fail("/items", 502, times=1)
    status, results = call(
        "rest.import",
        {"connection": conn(api), "postMapData": [{"name": "once"}], "configuration": {"path": "/items"}},
    )
    assert results[0]["statusCode"] == 422 and results[0]["errors"][0]["code"] == "http_502"
    assert len([c for c in api.state["calls"] if c[0] == "POST"]) == 1


def test_post_is_repeated_after_a_429(call, api):
    api.fail("/items", 429, times=1, retry_after=0)
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": [{"name": "twice"}],
            "configuration": {"path": "/items", "idPath": "data.id"},
        },
    )
    assert results == [{"statusCode": 200, "id": "new-1"}]
    assert len([c for c in api.state["calls"] if c[0] == "POST"]) == 2


# -- export --------------------------------------------------------------------------------------

IDS = [r["id"] for r in RECORDS]


def test_page_number_pagination(call, api):
    o = {
        "connection": conn(api),
        "configuration": {
            "path": "/items-page",
            "recordsPath": "data.items",
            "pagination": {"type": "page", "pageSize": 10},
        },
    }
    pages = export_all(call, o)
    # The short page is not taken for the end: the empty page after it is.
    assert [len(p["data"]) for p in pages] == [10, 10, 3, 0]
    assert [r["id"] for p in pages for r in p["data"]] == IDS


def test_offset_pagination(call, api):
    o = {
        "connection": conn(api),
        "configuration": {"path": "/items-offset", "pagination": {"type": "offset", "pageSize": 5}},
    }
    pages = export_all(call, o)
    assert [r["id"] for p in pages for r in p["data"]] == IDS and len(pages) == 6


def test_cursor_pagination(call, api):
    o = {
        "connection": conn(api),
        "configuration": {
            "path": "/items-cursor",
            "recordsPath": "results",
            "pagination": {"type": "cursor", "cursorPath": "meta.next"},
        },
    }
    pages = export_all(call, o)
    assert [r["id"] for p in pages for r in p["data"]] == IDS and len(pages) == 3


def test_link_header_pagination(call, api):
    o = {"connection": conn(api), "configuration": {"path": "/items-link", "pagination": {"type": "link"}}}
    pages = export_all(call, o)
    assert [r["id"] for p in pages for r in p["data"]] == IDS and len(pages) == 4


def test_a_next_link_to_another_host_is_not_followed(call, api):
    o = {
        "connection": conn(api),
        "configuration": {"path": "/items-evil-link", "pagination": {"type": "link"}},
    }
    status, first = call("rest.export", o)
    status, body = call("rest.export", dict(o, state=first["state"]))
    assert status == 422 and body["errors"][0]["code"] == "unexpected_answer"
    assert "another host" in body["errors"][0]["message"]
    assert not any("steal" in c[1] for c in api.state["calls"])


def test_delta_sends_last_execution_time(call, api):
    o = {
        "connection": conn(api),
        "type": "delta",
        "delta": {"dateField": "updated", "lastExecutionTime": 1768003200000},  # 2026-01-10T00:00:00Z
        "configuration": {"path": "/items-delta", "delta": {"param": "updated_since"}},
    }
    status, page = call("rest.export", o)
    from urllib.parse import unquote

    assert [unquote(c[1]) for c in api.state["calls"]] == [
        "/items-delta?updated_since=2026-01-10T00:00:00.000Z"
    ]
    assert page["data"] == [r for r in RECORDS if r["updated"] > "2026-01-10T00:00:00.000Z"]


def test_test_export_honours_limit(call, api):
    o = {
        "connection": conn(api),
        "type": "test",
        "test": {"limit": 2},
        "configuration": {"path": "/items-offset", "pagination": {"type": "offset", "pageSize": 10}},
    }
    status, page = call("rest.export", o)
    assert [r["id"] for r in page["data"]] == [1, 2] and page["lastPage"] is True


def test_export_refused_takes_the_connection_offline(call, api):
    o = {"connection": conn(api, secrets={"token": "nope-nope"}), "configuration": {"path": "/items-offset"}}
    status, page = call("rest.export", o)
    assert status == 200 and page["connectionOffline"] is True


def test_export_api_error_is_422_with_its_text(call, api):
    o = {"connection": conn(api, retries=0), "configuration": {"path": "/broken"}}
    status, body = call("rest.export", o)
    assert status == 422 and body["errors"] == [
        {"code": "http_500", "message": "GET /broken answered 500 INTERNAL SERVER ERROR: database on fire"}
    ]


# -- import -----------------------------------------------------------------------------------------


def test_create_maps_every_status_per_record(call, api):
    records = [
        {"name": "a"},
        {"name": "b", "bad": True},
        {"name": "c", "forbidden": True},
        {"name": "d", "boom": True},
        {"name": "e"},
        "not an object",
    ]
    status, results = call(
        "rest.import",
        {
            "connection": conn(api, retries=0),
            "postMapData": records,
            "configuration": {"path": "/items", "idPath": "data.id"},
        },
    )
    assert status == 200
    # A 403 on one record is that record's error: the connection stays online.
    assert [r["statusCode"] for r in results] == [200, 422, 422, 422, 200, 422]
    assert results[1]["errors"] == [
        {"code": "http_422", "message": "POST /items answered 422 UNPROCESSABLE ENTITY: name is required"}
    ]
    assert results[2]["errors"][0]["message"] == "POST /items answered 403 FORBIDDEN: not your tenant"
    assert results[3]["errors"] == [
        {"code": "http_500", "message": "POST /items answered 500 INTERNAL SERVER ERROR: upstream exploded"}
    ]
    assert {results[0]["id"], results[4]["id"]} == {"new-1", "new-2"}


def test_update_with_id_from_the_record(call, api):
    records = [{"id": "a1", "name": "x"}, {"id": "missing", "name": "y"}, {"name": "no id"}]
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": records,
            "configuration": {"method": "PATCH", "path": "/items/{id}"},
        },
    )
    assert results[0] == {"statusCode": 200, "id": "a1"}
    assert results[1]["statusCode"] == 422 and results[1]["errors"][0]["message"].endswith(
        "404 NOT FOUND: no such item"
    )
    assert results[2]["statusCode"] == 422 and "has no id" in results[2]["errors"][0]["message"]
    assert ("PATCH", "/items/a1?") in api.state["calls"]


def test_records_go_out_concurrently_within_the_bound(call, api):
    records = [{"name": str(i), "sleep": 0.2} for i in range(12)]
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": records,
            "configuration": {"path": "/items", "idPath": "data.id", "concurrency": 3},
        },
    )
    assert [r["statusCode"] for r in results] == [200] * 12
    assert api.state["max_in_flight"] == 3


def test_unreachable_api_fails_every_record_with_401(call, api):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        c = conn(api, retries=0)
        c["unencrypted"]["baseURI"] = f"http://127.0.0.1:{s.getsockname()[1]}"
        status, results = call(
            "rest.import",
            {"connection": c, "postMapData": [{"a": 1}, {"a": 2}], "configuration": {"path": "/items"}},
        )
    assert [r["statusCode"] for r in results] == [401, 401]
    assert results[0]["errors"][0]["code"] == "connection_offline"


def test_configuration_problems_are_listed(call, api):
    status, body = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": [{}],
            "configuration": {"method": "PUT", "path": "items", "concurrency": 99},
        },
    )
    assert status == 422
    fields = sorted(e["message"].split(":")[0] for e in body["errors"])
    assert fields == ["configuration.concurrency", "configuration.path"]
