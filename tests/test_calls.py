"""gateway.calls, unit by unit: the checks of a result against its kind."""

import types

import pytest

from gateway.calls import TYPE_GROUPS, check_result
from gateway.errors import InvalidResponse
from gateway.hookspecs import GROUPS


def arguments(**fields):
    return {"context": types.SimpleNamespace(wire_name="acme.fn"), **fields}


def refused(kind, result, **fields):
    with pytest.raises(InvalidResponse) as caught:
        check_result(kind, result, arguments(**fields))
    return caught.value.message


def test_ping_nothing_is_a_200():
    assert check_result("ping", None, arguments()) == {"statusCode": 200}


@pytest.mark.parametrize("result", [{"statusCode": "200"}, {}, "ok", [200]])
def test_ping_needs_an_integer_status(result):
    assert "integer statusCode" in refused("ping", result)


def test_export_rules():
    assert check_result("export", {"data": [], "lastPage": True}, arguments())
    assert check_result("export", {"data": [], "connectionOffline": True}, arguments())
    assert "data as an array" in refused("export", {"data": {}, "lastPage": True})
    assert "lastPage" in refused("export", {"data": []})
    assert "errors as an array" in refused("export", {"data": [], "lastPage": True, "errors": "x"})


def test_import_needs_one_entry_with_a_status_per_record():
    records = [{}, {}]
    assert check_result("import", [{"statusCode": 200}] * 2, arguments(postMapData=records))
    assert "exactly one per record" in refused("import", [{"statusCode": 200}], postMapData=records)
    assert "result 1 must be an object with an integer statusCode" in refused(
        "import", [{"statusCode": 200}, {"id": "x"}], postMapData=records
    )


@pytest.mark.parametrize(
    ("kind", "field"),
    [("preMap", "data"), ("postMap", "postMapData"), ("postSubmit", "responseData"),
     ("postResponseMap", "postResponseMapData")],
)  # fmt: skip
def test_record_hooks_need_one_object_per_record(kind, field):
    fields = {field: [{"a": 1}, {"a": 2}]}
    assert check_result(kind, [{}, {}], arguments(**fields)) == [{}, {}]
    assert f"acme.fn ({kind}) returned 3 results for 2 records of {field}" in refused(
        kind, [{}] * 3, **fields
    )
    assert f"acme.fn ({kind}) result 1 must be an object." == refused(kind, [{}, 1], **fields)
    assert "must return an array" in refused(kind, {"data": []}, **fields)


def test_pre_save_page_needs_data_and_typed_extras():
    assert check_result("preSavePage", {"data": [], "errors": None}, arguments())
    assert "data as an array" in refused("preSavePage", [])
    assert "errors as an array" in refused("preSavePage", {"data": [], "errors": {}})
    assert "abort as true or false" in refused("preSavePage", {"data": [], "abort": 1})


@pytest.mark.parametrize("kind", ["hook", "postAggregate", "installer", "uninstaller", "setting", "utility"])
@pytest.mark.parametrize("result", [None, False, 0, "text", {}, [1]])
def test_free_form_kinds_pass_anything(kind, result):
    assert check_result(kind, result, arguments()) == result


def test_every_group_is_reachable_by_its_own_name_and_the_reference_aliases():
    assert {TYPE_GROUPS[group] for group in GROUPS} == set(GROUPS)
    assert {k: v for k, v in TYPE_GROUPS.items() if k not in GROUPS} == {
        "wrapper": "wrappers",
        "hook": "hooks",
        "setting": "settings",
        "utility": "utilities",
    }


def test_every_call_is_seen_by_call_done_hooks_and_their_failure_changes_nothing():
    from gateway import hookimpl
    from gateway.testing import InProcessGateway
    from wrapgate_testkit import kit, observer

    class Broken:
        @hookimpl
        def wrapgate_call_done(self):
            raise RuntimeError("observer bug")

    gateway = InProcessGateway({"kit": kit, "observer": observer, "broken": Broken()})
    observer.DONE.clear()
    assert gateway.call("kit.ping", {"connection": {"unencrypted": {}}}) == (200, {"statusCode": 200})
    assert gateway.call("kit.nothing", {"a": 1})[0] == 422
    assert gateway.call("kit.ping", None)[0] == 422  # a bad request: no function found yet
    assert observer.DONE == [
        ("kit.ping", "ok", 200),
        ("", "invalid_function", 422),
        ("", "missing_required_field", 422),
    ]


def test_slot_hooks_see_each_call_wait_run_and_be_refused_and_their_failure_changes_nothing():
    from gateway import hookimpl
    from gateway.parsed import Connection
    from gateway.testing import InProcessGateway
    from wrapgate_testkit import kit, observer

    class Broken:
        @hookimpl
        def wrapgate_slot_running(self, delta):
            raise RuntimeError("observer bug")

        @hookimpl
        def wrapgate_slot_rejected(self):
            raise RuntimeError("observer bug")

    gateway = InProcessGateway(
        {"kit": kit, "broken": Broken(), "observer": observer}, limiter="local", limit_wait=0
    )
    connection = {"_id": "conn-s", "concurrencyLevel": 1, "unencrypted": {}}
    observer.SLOTS.clear()
    assert gateway.call("kit.ping", {"connection": connection}) == (200, {"statusCode": 200})
    # A slot granted at once: the call never waited, and is not reported as waiting.
    assert observer.SLOTS == [("running", "conn-s", 1), ("running", "conn-s", -1)]
    observer.SLOTS.clear()
    with gateway.gateway.limit(Connection.parse(connection)):
        status, body = gateway.call("kit.ping", {"connection": connection})
    assert status == 429 and body["errors"][0]["code"] == "concurrency_limit_exceeded"
    assert observer.SLOTS == [
        ("running", "conn-s", 1),  # the holder
        ("waiting", "conn-s", 1),  # the call refused
        ("waiting", "conn-s", -1),
        ("rejected", "conn-s", None),
        ("running", "conn-s", -1),
    ]


def test_the_steps_before_the_plugin_runs_are_public_and_run_alone():
    """What POST /validate runs: parse, find, context, arguments; nothing is called."""
    from gateway.errors import InvalidRequest
    from gateway.testing import InProcessGateway
    from wrapgate_testkit import kit

    gateway = InProcessGateway({"kit": kit}).gateway
    body = {
        "diy": True,
        "function": "kit.ping",
        "options": {"connection": {"_id": 7, "unencrypted": {"a": 1}}},
    }
    call = gateway.parse(body)
    target = gateway.find(call)
    context = gateway.context(call, target, "req-1")
    arguments = gateway.arguments(target, call, context)
    assert (target.wire_name, target.kind, context.connection_id) == ("kit.ping", "ping", "7")
    assert arguments["context"] is context and arguments["unencrypted"] == {"a": 1}
    with pytest.raises(InvalidRequest):
        gateway.parse({"diy": True, "options": {}})
