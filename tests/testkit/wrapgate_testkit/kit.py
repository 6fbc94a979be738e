"""Connector ``kit``: ping/export/import whose behaviour the call chooses.

ping reads ``connection.unencrypted.mode``; export and import read their
``configuration``. Messages deliberately contain the connection's password so
that the tests can check it never leaves the gateway.
"""

import datetime
import decimal
import json
import os
import time
import uuid

from gateway import hookimpl
from gateway.errors import ConnectionOffline, CredentialsRefused, record_result


class QuotaExceeded(Exception):
    code = "quota_exceeded"


@hookimpl
def wrapgate_functions():
    return {"exportOrders": "export", "pingAgain": "ping"}


def _password(encrypted):
    return (encrypted or {}).get("password", "")


@hookimpl
def wrapgate_ping(function, unencrypted, encrypted, context):
    mode = unencrypted.get("mode", "ok")
    secret = _password(encrypted)
    if mode == "refuse":
        raise CredentialsRefused(f"login with password {secret} was refused")
    if mode == "offline":
        raise ConnectionOffline("host db.example.invalid is unreachable")
    if mode == "boom":
        raise ValueError(f"driver failed while sending {secret}")
    if mode == "coded":
        raise QuotaExceeded("daily quota used up")
    if mode == "string":
        return "fine"
    if mode == "context":
        return {
            "statusCode": 200,
            "function": function,
            "wire": context.wire_name,
            "connection": context.connection_id,
            "remaining": context.remaining() > 0,
        }
    if mode == "log":
        context.logger.warning("plugin says the password is %s", secret)
        return None
    if mode == "sleep":
        time.sleep(float(unencrypted.get("seconds", 1)))
    return None


def record(i):
    return {"id": f"r{i}", "n": i}


@hookimpl
def wrapgate_export(function, configuration, type, state, test, context):
    conf = configuration or {}
    if conf.get("sleep"):
        time.sleep(float(conf["sleep"]))
    if conf.get("raise") == "offline":
        raise ConnectionOffline("API answered 503 three times")
    if conf.get("raise") == "plain":
        raise RuntimeError("export exploded")
    if conf.get("return") == "object":
        return {"data": [object()], "lastPage": True}
    if conf.get("return") == "nolastpage":
        return {"data": []}
    if conf.get("return") == "list":
        return [1, 2, 3]
    if conf.get("return") == "types":
        return {
            "data": [
                {
                    "when": datetime.datetime(2026, 11, 30, 12, 0, 5, tzinfo=datetime.UTC),
                    "day": datetime.date(2026, 1, 2),
                    "amount": decimal.Decimal("12.3400"),
                    "big": decimal.Decimal("12345678901234567890.123456789"),
                    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
                    "raw": b"\x00\x01wrapgate",
                }
            ],
            "lastPage": True,
        }
    if "bytes" in conf:
        # A result whose JSON is exactly conf["bytes"] long: {"data":["xxx"],"lastPage":true}
        overhead = len(json.dumps({"data": [""], "lastPage": True}, separators=(",", ":")))
        return {"data": ["x" * (int(conf["bytes"]) - overhead)], "lastPage": True}
    pages = int(conf.get("pages", 1))
    size = int(conf.get("records", 3))
    page = int(state or 0)
    if type == "test":
        size = min(size, int((test or {}).get("limit", size)))
    data = [record(page * size + i) for i in range(size)]
    last = page + 1 >= pages or type == "test"
    result = {"data": data, "lastPage": last, "state": None if last else page + 1}
    if function == "exportOrders":
        result["orders"] = True
    if conf.get("pid"):
        result["pid"] = os.getpid()
    return result


@hookimpl
def wrapgate_import(postMapData, configuration, encrypted):
    conf = configuration or {}
    if conf.get("raise") == "refused":
        raise CredentialsRefused(f"token {_password(encrypted)} expired")
    results = []
    for position, rec in enumerate(postMapData):
        if isinstance(rec, dict) and rec.get("bad"):
            results.append(record_result(ValueError(f"record {position} is bad")))
        else:
            results.append(
                {
                    "statusCode": 200,
                    "id": str(rec.get("id", position)) if isinstance(rec, dict) else str(position),
                }
            )
    if conf.get("drop"):
        results = results[: -int(conf["drop"])]
    return results
