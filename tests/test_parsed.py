"""gateway.parsed: the call's typed values."""

from gateway.parsed import NO_CONNECTION, Call, Connection


def test_connection_sections_at_the_top_or_under_wrapper():
    top = Connection.parse(
        {"_id": 7, "unencrypted": {"h": 1}, "encrypted": {"p": "x"}, "concurrencyLevel": 3}
    )
    assert (top.id, top.level, top.unencrypted, top.encrypted) == ("7", 3, {"h": 1}, {"p": "x"})
    nested = Connection.parse({"wrapper": {"unencrypted": {"h": 2}, "encrypted": {"p": "y"}}})
    assert (nested.id, nested.unencrypted, nested.encrypted) == (None, {"h": 2}, {"p": "y"})


def test_every_encrypted_section_is_a_secret_section():
    both = Connection.parse({"encrypted": {"a": 1}, "wrapper": {"encrypted": {"b": 2}}})
    assert both.encrypted == {"a": 1}
    assert both.secret_sections == ({"a": 1}, {"b": 2})


def test_no_connection():
    assert Connection.parse(None) is NO_CONNECTION and Connection.parse("x") is NO_CONNECTION
    assert NO_CONNECTION.id is None and NO_CONNECTION.encrypted == {}


def test_call_fields():
    body = {
        "diy": True,
        "type": "hook",
        "function": "a.b",
        "maxResponseSize": "50",
        "options": {"bearerToken": "t", "_flowId": "f", "_importId": "i"},
    }
    call = Call.parse(body, 1000)
    assert (call.diy, call.connector_id, call.type, call.function) == (True, None, "hook", "a.b")
    assert (call.bearer_token, call.flow_id, call.resource_id, call.max_response_size) == ("t", "f", "i", 50)
    assert call.connection is NO_CONNECTION
    app = Call.parse({"_connectorId": "app", "function": "a.b", "options": {"bearerToken": ""}}, 1000)
    assert (app.diy, app.connector_id, app.bearer_token, app.max_response_size) == (False, "app", None, 1000)
