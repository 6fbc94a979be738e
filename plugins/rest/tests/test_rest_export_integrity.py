"""Exports lose nothing and store no secret: state, short pages, once and delta (issue 11)."""

import json
import urllib.parse

from api import API_KEY, RECORDS
from options import conn, export_all

IDS = [r["id"] for r in RECORDS]


def test_an_api_key_in_the_query_is_never_in_state_nor_sent_twice(call, api):
    c = conn(api, {"type": "apiKey", "queryParam": "key"}, {"apiKey": API_KEY})
    pages = export_all(
        call, {"connection": c, "configuration": {"path": "/items-link", "pagination": {"type": "link"}}}
    )
    assert [r["id"] for p in pages for r in p["data"]] == IDS
    # The API echoes the key into its next links; what integrator.io stores must not hold it.
    assert API_KEY not in json.dumps(pages) and "key=" not in json.dumps(pages)
    for _, path in api.state["calls"]:
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["key"] == [API_KEY]


def test_a_capped_page_size_is_not_taken_for_the_end(call, api):
    options = {
        "connection": conn(api),
        "configuration": {"path": "/items-capped-page", "pagination": {"type": "page", "pageSize": 100}},
    }
    pages = export_all(call, options)
    assert [r["id"] for p in pages for r in p["data"]] == IDS  # the API served 10 at a time
    assert pages[-1]["lastPage"] is True


def test_offset_paging_stops_when_the_total_is_reached(call, api):
    options = {
        "connection": conn(api),
        "configuration": {
            "path": "/items-capped-offset",
            "recordsPath": "items",
            "pagination": {"type": "offset", "pageSize": 50, "totalPath": "total"},
        },
    }
    pages = export_all(call, options)
    assert [r["id"] for p in pages for r in p["data"]] == IDS
    assert [len(p["data"]) for p in pages] == [10, 10, 3]  # no extra request for an empty page


def test_delta_without_a_delta_setting_is_refused(call, api):
    status, body = call(
        "rest.export",
        {
            "connection": conn(api),
            "type": "delta",
            "delta": {"dateField": "updated", "lastExecutionTime": 1768003200000},
            "configuration": {"path": "/items-offset"},
        },
    )
    assert status == 422 and body["errors"][0]["code"] == "unsupported_export_type"
    assert "configuration.delta" in body["errors"][0]["message"]
    assert api.state["calls"] == []  # refused before anything was fetched


def test_once_without_a_once_setting_is_refused(call, api):
    status, body = call(
        "rest.export",
        {
            "connection": conn(api),
            "type": "once",
            "once": {"booleanField": "exported"},
            "configuration": {"path": "/items-offset"},
        },
    )
    assert status == 422 and body["errors"][0]["code"] == "unsupported_export_type"
    assert api.state["calls"] == []


ONCE = {
    "path": "/items-once",
    "pagination": {"type": "offset", "pageSize": 10},
    "once": {"query": {"exported": "false"}, "path": "/items-once/{id}"},
}


def test_once_marks_each_page_exported_after_it_was_delivered(call, api):
    options = {
        "connection": conn(api),
        "type": "once",
        "once": {"booleanField": "exported"},
        "configuration": ONCE,
    }
    status, first = call("rest.export", options)
    assert [r["id"] for r in first["data"]] == IDS[:10] and first["lastPage"] is False
    assert api.state["exported"] == set()  # not marked before integrator.io holds the page
    pages = export_all(call, options)
    assert [r["id"] for p in pages for r in p["data"]] == IDS
    assert api.state["exported"] == set(IDS) and not any("errors" in p for p in pages)
    again = export_all(call, options)  # the next run finds nothing left to export
    assert [r for p in again for r in p["data"]] == []


def test_once_reports_a_record_it_could_not_mark_and_still_ends(call, api):
    api.state["locked"].add(3)
    options = {
        "connection": conn(api),
        "type": "once",
        "once": {"booleanField": "exported"},
        "configuration": ONCE,
    }
    pages = export_all(call, options)
    assert sorted(r["id"] for p in pages for r in p["data"]) == IDS
    errors = [e for p in pages for e in p.get("errors", [])]
    assert len(errors) == 1 and errors[0]["message"].startswith("record 3 not marked exported")
    assert api.state["exported"] == set(IDS) - {3}  # exported again next run: nothing lost
