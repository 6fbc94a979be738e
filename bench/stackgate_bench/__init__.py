"""Connector ``bench``: the load harness's four functions (../shared/bench), for
measuring the gateway against the Node reference stack with the same records."""
import time

from gateway import hookimpl

CITIES = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown"]


def make_record(i):
    # The harness's record, field for field (~176-200 bytes of JSON).
    return {"id": "rec-%07d" % i, "seq": i, "name": "Customer %d" % i, "email": "c%d@example.com" % i,
            "amount": (i % 100000) + 0.25, "active": i % 2 == 0, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)],
            "address": {"city": CITIES[i % 5], "zip": str(10000 + (i % 90000))},
            "note": None if i % 3 == 0 else "lorem ipsum"}


@hookimpl
def stackgate_functions():
    return {"exportPage": "export", "importEcho": "import", "slowPing": "ping"}


@hookimpl
def stackgate_ping(function, options):
    if function == "slowPing":
        time.sleep(float((options.get("configuration") or {}).get("delayMs", 100)) / 1000)


@hookimpl
def stackgate_export(configuration):
    conf = configuration or {}
    n, start = int(conf.get("records", 100)), int(conf.get("offset", 0))
    return {"data": [make_record(start + k) for k in range(n)], "lastPage": False,
            "state": {"offset": start + n, "page": 1}}


@hookimpl
def stackgate_import(postMapData):
    return [{"statusCode": 200, "id": str(i)} for i in range(len(postMapData))]
