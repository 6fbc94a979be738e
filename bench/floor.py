"""The floor: what Python cannot go below for the harness's calls.

A bare WSGI callable, run by gunicorn with the gateway's worker class, that
parses the body with orjson, calls the same ``bench`` plugin function the
gateway would and writes orjson bytes. No auth, validation, limits, logs or
metrics: the gateway's cost is its CPU per request minus this one's.

    gunicorn -k <worker class> -w 2 --chdir bench floor:app
"""

import orjson
import wrapgate_bench as bench


def _call(function, options):
    if function in ("ping", "slowPing"):
        return bench.wrapgate_ping(function=function, options=options) or {"statusCode": 200}
    if function == "exportPage":
        return bench.wrapgate_export(configuration=options.get("configuration"))
    if function == "importEcho":
        return bench.wrapgate_import(postMapData=options["postMapData"])
    raise KeyError(function)


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = orjson.loads(environ["wsgi.input"].read(length))
    result = _call(body["function"].rpartition(".")[2], body.get("options") or {})
    out = orjson.dumps(result)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]
