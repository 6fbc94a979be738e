"""GET /plugins and POST /validate over real HTTP, on the session's gunicorn (tests/testkit)."""

import requests
from support import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_plugins_needs_the_token(gateway):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = requests.get(gateway.url + "/plugins", headers=headers, timeout=30)
        assert r.status_code == 401
        assert r.json() == {"errors": [{"code": "unauthorized", "message": "Invalid system token."}]}


def test_plugins_lists_connectors_with_their_spec_and_load_errors(gateway):
    listing = requests.get(gateway.url + "/plugins", headers=AUTH, timeout=30).json()
    by_name = {c["name"]: c for c in listing["connectors"]}
    strict = by_name["strict"]
    assert strict["loaded"] and strict["package"] == "wrapgate-testkit"
    # JSON Schema generated from the connector's marshmallow schemas
    assert strict["spec"]["connection"]["unencrypted"]["required"] == ["host"]
    assert strict["spec"]["connection"]["unencrypted"]["properties"]["port"]["maximum"] == 65535
    assert strict["spec"]["connection"]["encrypted"]["properties"]["password"]["minLength"] == 8
    assert strict["spec"]["functions"]["strict.export"]["configuration"]["required"] == ["table"]
    assert strict["spec"]["functions"]["strict.ping"] == {"kind": "ping"}
    kit = by_name["kit"]
    assert kit["spec"]["functions"]["kit.exportOrders"] == {"kind": "export", "configuration": None}
    assert kit["spec"]["connection"] == {"unencrypted": None, "encrypted": None}
    assert by_name["broken"]["loaded"] is False and "import of" in by_name["broken"]["error"]
    assert listing["extensions"] == ["observer"]


def validate(gateway, body, headers=AUTH):
    return requests.post(gateway.url + "/validate", json=body, headers=headers, timeout=30)


def test_validate_needs_the_token(gateway):
    body = {"diy": True, "function": "strict.ping", "options": {}}
    assert validate(gateway, body, headers={}).status_code == 401
    assert validate(gateway, dict(body, access_token=TOKEN), headers={}).status_code == 200


def test_validate_lists_every_problem_of_the_sections_and_configuration(gateway):
    secret = "short-secret"[:5]  # too short: its value must not come back
    options = {
        "connection": {"unencrypted": {"port": 0}, "encrypted": {"password": secret}},
        "configuration": {"pageSize": 0},
    }
    r = validate(gateway, {"diy": True, "function": "strict.export", "options": options})
    assert r.status_code == 200
    answer = r.json()
    assert answer["valid"] is False and answer["function"] == "strict.export"
    messages = sorted(e["message"] for e in answer["errors"])
    assert messages == [
        "configuration.pageSize: Must be greater than or equal to 1 and less than or equal to 10000.",
        "configuration.table: Missing data for required field.",
        "connection.encrypted.password: Shorter than minimum length 8.",
        "connection.unencrypted.host: Missing data for required field.",
        "connection.unencrypted.port: Must be greater than or equal to 1 and less than or equal to 65535.",
    ]
    assert {e["code"] for e in answer["errors"]} == {"invalid_field"}
    assert secret not in r.text


def test_validate_reports_the_requests_own_problems_together(gateway):
    answer = validate(gateway, {"_connectorId": "x", "function": ["ping"]}).json()
    assert answer["valid"] is False and answer["function"] is None
    assert [e["code"] for e in answer["errors"]] == [
        "invalid_field",
        "invalid_field",
        "missing_required_field",
    ]
    unknown = validate(gateway, {"diy": True, "function": "nothing.here", "options": {}}).json()
    assert unknown["errors"][0]["code"] == "invalid_function"


def test_validate_accepts_a_valid_call(gateway):
    options = {"connection": {"unencrypted": {"host": "db"}, "encrypted": {"password": "long-enough"}}}
    body = {"diy": True, "function": "strict.export", "options": dict(options, configuration={"table": "t"})}
    assert validate(gateway, body).json() == {"valid": True, "function": "strict.export", "errors": []}
    imports = {"diy": True, "function": "kit.import", "options": {"postMapData": "not a list"}}
    answer = validate(gateway, imports).json()
    assert answer["errors"] == [
        {"code": "invalid_field", "message": "options.postMapData must be an array of records."}
    ]


def test_validate_lists_the_requests_and_the_connectors_problems_together(gateway):
    # Neither diy nor _connectorId, and a section incomplete: both come back at once.
    options = {"connection": {"unencrypted": {}, "encrypted": {"password": "long-enough"}}}
    body = {"function": "strict.ping", "options": options}  # neither diy nor _connectorId
    answer = validate(gateway, body).json()
    assert answer["valid"] is False and answer["function"] == "strict.ping"
    assert answer["errors"] == [
        {
            "code": "missing_required_field",
            "message": "Need to set either the diy or _connectorId field in extension options.",
        },
        {"code": "invalid_field", "message": "connection.unencrypted.host: Missing data for required field."},
    ]
