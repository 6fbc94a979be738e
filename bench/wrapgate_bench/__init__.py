"""Connector ``bench``: the load harness's four functions (../shared/bench), for
measuring the gateway against the Node reference stack with the same records."""

import time

from gateway import hookimpl

CITIES = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown"]


def make_record(i):
    # The harness's record, field for field (~176-200 bytes of JSON).
    return {
        "id": f"rec-{i:07d}",
        "seq": i,
        "name": f"Customer {i}",
        "email": f"c{i}@example.com",
        "amount": (i % 100000) + 0.25,
        "active": i % 2 == 0,
        "tags": [f"t{i % 7}", f"u{i % 11}"],
        "address": {"city": CITIES[i % 5], "zip": str(10000 + (i % 90000))},
        "note": None if i % 3 == 0 else "lorem ipsum",
    }


@hookimpl
def wrapgate_functions():
    return {"exportPage": "export", "importEcho": "import", "slowPing": "ping"}


@hookimpl
def wrapgate_ping(function, options):
    if function == "slowPing":
        time.sleep(float((options.get("configuration") or {}).get("delayMs", 100)) / 1000)


@hookimpl
def wrapgate_export(configuration):
    conf = configuration or {}
    n, start = int(conf.get("records", 100)), int(conf.get("offset", 0))
    return {
        "data": [make_record(start + k) for k in range(n)],
        "lastPage": False,
        "state": {"offset": start + n, "page": 1},
    }


@hookimpl
def wrapgate_import(postMapData):
    return [{"statusCode": 200, "id": str(i)} for i in range(len(postMapData))]
