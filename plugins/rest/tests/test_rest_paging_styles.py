"""Paging styles of common APIs: next URL in the body, cursor in a header, POST-body paging."""

from api import RECORDS
from options import conn, export_all

IDS = [r["id"] for r in RECORDS]


def ids_of(call, api, configuration):
    pages = export_all(call, {"connection": conn(api), "configuration": configuration})
    return [r["id"] for p in pages for r in p["data"]], pages


def test_odata_next_link_in_the_body(call, api):
    ids, pages = ids_of(
        call,
        api,
        {
            "path": "/items-odata",
            "recordsPath": "value",
            "pagination": {"type": "nextUrl", "nextUrlPath": '"@odata.nextLink"'},
        },
    )
    assert ids == IDS and len(pages) == 3


def test_salesforce_next_records_url_with_a_stop_condition(call, api):
    ids, pages = ids_of(
        call,
        api,
        {
            "path": "/items-salesforce",
            "recordsPath": "records",
            "pagination": {"type": "nextUrl", "nextUrlPath": "nextRecordsUrl", "stopPath": "done"},
        },
    )
    assert ids == IDS and len(pages) == 3


def test_cursor_in_a_response_header(call, api):
    ids, pages = ids_of(
        call,
        api,
        {
            "path": "/items-header-cursor",
            "pagination": {"type": "cursor", "cursorHeader": "X-Next-Cursor", "cursorParam": "after"},
        },
    )
    assert ids == IDS and len(pages) == 4


def test_graphql_paging_in_the_post_body(call, api):
    ids, pages = ids_of(
        call,
        api,
        {
            "method": "POST",
            "path": "/graphql",
            "body": {
                "query": "query Items($after: String) { items(after: $after) { nodes { id } } }",
                "variables": {},
            },
            "recordsPath": "data.items.nodes",
            "pagination": {
                "type": "cursor",
                "location": "body",
                "cursorPath": "data.items.pageInfo.endCursor",
                "cursorParam": "variables.after",
                "stopPath": "data.items.pageInfo.hasNextPage == `false`",
            },
        },
    )
    assert ids == IDS and len(pages) == 3
    assert all(method == "POST" for method, _ in api.state["calls"])


def test_record_filter(call, api):
    ids, pages = ids_of(
        call,
        api,
        {
            "path": "/items-offset",
            "recordFilter": "id > `20` || name == 'Item 2'",
            "pagination": {"type": "offset", "pageSize": 10},
        },
    )
    assert ids == [2, 21, 22, 23]
    assert [len(p["data"]) for p in pages] == [1, 0, 3, 0]  # filtering does not end paging early
