"""docs/protocol.md over real HTTP, against a real gunicorn serving the test plugins."""

import base64
import json

import pytest
import requests
from support import ROTATED, TOKEN, post

SECRET = "s3cr3t-Passw0rd!"
CONNECTION = {
    "_id": "conn-1",
    "type": "wrapper",
    "unencrypted": {"mode": "ok"},
    "encrypted": {"password": SECRET},
}


def call(gateway, function, options=None, **extra):
    body = {
        "diy": True,
        "type": "wrapper",
        "function": function,
        "options": options if options is not None else {"connection": CONNECTION},
    }
    body.update(extra)
    return post(gateway.url, body)


def errors(response):
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["errors"]


# -- Authentication -----------------------------------------------------------


class TestAuth:
    BODY = {"diy": True, "function": "kit.ping", "options": {"connection": CONNECTION}}

    def assert_refused(self, response):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "invalid system token"
        assert response.json() == {"errors": [{"code": "unauthorized", "message": "Invalid system token."}]}

    def test_bearer_header(self, gateway):
        assert post(gateway.url, self.BODY).json() == {"statusCode": 200}

    def test_scheme_is_case_insensitive(self, gateway):
        r = post(gateway.url, self.BODY, token=None, headers={"Authorization": f"bearer {TOKEN}"})
        assert r.status_code == 200

    def test_second_token_is_valid_too(self, gateway):
        # Rotation: the file's token and the environment's both open the door.
        assert post(gateway.url, self.BODY, token=ROTATED).status_code == 200

    def test_wrong_token(self, gateway):
        self.assert_refused(post(gateway.url, self.BODY, token="nope"))

    def test_missing_token(self, gateway):
        self.assert_refused(post(gateway.url, self.BODY, token=None))

    def test_token_prefix_is_not_enough(self, gateway):
        self.assert_refused(post(gateway.url, self.BODY, token=TOKEN[:-1]))

    def test_body_access_token(self, gateway):
        r = post(gateway.url, dict(self.BODY, access_token=TOKEN), token=None)
        assert r.status_code == 200

    def test_query_access_token(self, gateway):
        r = post(gateway.url, self.BODY, token=None, params={"access_token": TOKEN})
        assert r.status_code == 200

    def test_body_is_consulted_before_query(self, gateway):
        r = post(
            gateway.url, dict(self.BODY, access_token="wrong"), token=None, params={"access_token": TOKEN}
        )
        # The body's (wrong) token is the one presented; the query is not looked at.
        self.assert_refused(r)

    def test_any_authorization_header_disables_fallbacks(self, gateway):
        r = post(
            gateway.url,
            dict(self.BODY, access_token=TOKEN),
            token=None,
            headers={"Authorization": "Basic dXNlcjpwYXNz"},
            params={"access_token": TOKEN},
        )
        self.assert_refused(r)

    def test_header_with_extra_parts_is_refused(self, gateway):
        r = post(gateway.url, self.BODY, token=None, headers={"Authorization": f"Bearer {TOKEN} x"})
        self.assert_refused(r)

    def test_refused_before_the_body_is_read(self, gateway):
        # A wrong bearer token gets 401 even when the body is not JSON at all.
        self.assert_refused(post(gateway.url, data=b"{not json", token="nope"))


# -- Request checks: every row of docs/protocol.md's checks ----------------------

NEED = {
    "code": "missing_required_field",
    "message": "Need to set either the diy or _connectorId field in extension options.",
}
FN_MISSING = {
    "code": "missing_required_field",
    "message": "Missing required field function in the extension options.",
}
FN_TYPE = {
    "code": "invalid_field",
    "message": "The function field in the extension options must be of type string.",
}
OPTS = {"code": "missing_required_field", "message": "Function options haven't been provided."}
BAD_CONNECTOR_ID = {
    "code": "invalid_field",
    "message": "The _connectorId set in the extension options "
    "does't match any of the _connectorId's present in extension configuration.",
}
NO_FUNCTION = {
    "code": "invalid_function",
    "message": "The function passed in the extension options doesn't map to a function.",
}


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, [NEED, FN_MISSING, OPTS]),
        ([], [NEED, FN_MISSING, OPTS]),
        ({"function": "kit.ping", "options": {}}, [NEED]),  # {} is present, as in JavaScript
        ({"diy": False, "_connectorId": "", "function": "kit.ping", "options": {"a": 1}}, [NEED]),
        ({"_connectorId": "unknown-app", "function": "kit.ping", "options": {"a": 1}}, [BAD_CONNECTOR_ID]),
        ({"diy": True, "options": {"a": 1}}, [FN_MISSING]),
        ({"diy": True, "function": "", "options": {"a": 1}}, [FN_MISSING]),
        ({"diy": True, "function": 7, "options": {"a": 1}}, [FN_TYPE]),
        ({"diy": True, "function": ["kit.ping"]}, [FN_TYPE, OPTS]),
        ({"diy": True, "function": "kit.ping"}, [OPTS]),
        ({"diy": True, "function": "kit.ping", "options": None}, [OPTS]),
        ({"_connectorId": "nope", "function": 1}, [BAD_CONNECTOR_ID, FN_TYPE, OPTS]),
    ],
)
def test_request_checks_are_reported_together_in_order(gateway, body, expected):
    r = post(gateway.url, body)
    assert r.status_code == 422
    assert errors(r) == expected


def test_options_must_be_an_object(gateway):
    r = post(gateway.url, {"diy": True, "function": "kit.ping", "options": [1]})
    assert r.status_code == 422
    assert errors(r) == [{"code": "invalid_field", "message": "options must be a JSON object."}]


@pytest.mark.parametrize(
    "group", ["hook", "hooks", "installer", "uninstaller", "setting", "settings", "utility", "utilities"]
)
def test_type_naming_a_group_the_module_lacks(gateway, group):
    # Integration app app-1 is served by kit alone, which has wrappers and nothing else.
    body = {
        "_connectorId": "app-1",
        "type": group,
        "function": "kit.ping",
        "options": {"connection": CONNECTION},
    }
    r = post(gateway.url, body)
    assert r.status_code == 422
    assert errors(r) == [
        {"code": "object_not_found", "message": f"The object {group} doesn't exist in the module."}
    ]


@pytest.mark.parametrize("group", ["x", "hookz", "toString", "constructor", "__proto__"])
def test_type_naming_no_group_at_all(gateway, group):
    r = call(gateway, "kit.ping", type=group)
    assert errors(r) == [
        {"code": "object_not_found", "message": f"The object {group} doesn't exist in the module."}
    ]


@pytest.mark.parametrize("group", ["wrapper", "wrappers", None, ""])
def test_wrapper_group_and_top_level_serve_wrappers(gateway, group):
    body = {"diy": True, "function": "kit.ping", "options": {"connection": CONNECTION}}
    if group is not None:
        body["type"] = group
    assert post(gateway.url, body).json() == {"statusCode": 200}


@pytest.mark.parametrize(
    "name",
    [
        "kit.nothing",
        "kit",
        "nosuch.ping",
        "toString",
        "constructor",
        "kit.__init__",
        "kit.wrapgate_ping",
        ".ping",
        "kit.ping.x",
        "__proto__.ping",
    ],
)
def test_names_that_map_to_nothing_answer_at_once(gateway, name):
    r = call(gateway, name, timeout=5)
    assert r.status_code == 422
    assert errors(r) == [NO_FUNCTION]


def test_type_is_checked_before_the_function(gateway):
    r = call(gateway, "kit.nothing", type="x")
    assert errors(r)[0]["code"] == "object_not_found"
    r = post(
        gateway.url, {"_connectorId": "app-1", "type": "hook", "function": "kit.nothing", "options": {"a": 1}}
    )
    assert errors(r)[0]["code"] == "object_not_found"


def test_connector_id_serves_only_its_connectors(gateway):
    ok = post(
        gateway.url, {"_connectorId": "app-1", "function": "kit.ping", "options": {"connection": CONNECTION}}
    )
    assert ok.json() == {"statusCode": 200}
    other = post(gateway.url, {"_connectorId": "app-1", "function": "strict.ping", "options": {"a": 1}})
    assert errors(other) == [NO_FUNCTION]


def test_legacy_alias_reaches_its_wire_function(gateway):
    options = {"connection": dict(CONNECTION, unencrypted={"mode": "context"})}
    r = call(gateway, "legacyPing", options)
    assert r.json()["wire"] == "kit.ping"


def test_plugin_that_failed_to_import_answers_with_a_short_reason_and_the_log_has_the_detail(gateway):
    r = call(gateway, "broken.ping")
    assert r.status_code == 422
    (entry,) = errors(r)
    assert entry["code"] == "connector_unavailable"
    assert "import of 'wrapgate_testkit.broken' failed" in entry["message"]
    assert "wrapgate_missing_driver" not in entry["message"]
    reference = entry["message"].rsplit("reference ", 1)[1].rstrip(").")
    line = next(line for line in gateway.log().splitlines() if f"reference {reference}" in line)
    assert "wrapgate_missing_driver" in line


def test_plugin_that_failed_to_register_answers_with_a_short_reason(gateway):
    (entry,) = errors(call(gateway, "badsig.ping"))
    assert entry["code"] == "connector_unavailable"
    assert "registration failed" in entry["message"] and "no_such_argument" not in entry["message"]


def test_other_connectors_keep_serving_beside_broken_ones(gateway):
    assert call(gateway, "kit.ping").json() == {"statusCode": 200}


def test_dispatch_reaches_only_the_selected_connector(gateway):
    # `other` raises in all its hooks: had it been called, these would fail.
    assert call(gateway, "kit.ping").status_code == 200
    page = call(gateway, "kit.export", {"configuration": {"records": 2}})
    assert page.json()["data"] == [{"id": "r0", "n": 0}, {"id": "r1", "n": 1}]
    assert call(gateway, "kit.import", {"postMapData": [{"id": "a"}]}).json() == [
        {"statusCode": 200, "id": "a"}
    ]
    (entry,) = errors(call(gateway, "other.ping"))
    assert entry["code"] == "AssertionError"


def test_declared_extra_function_and_wrapping_extension(gateway):
    r = call(gateway, "kit.exportOrders", {"configuration": {"records": 1}})
    body = r.json()
    assert body["orders"] is True and body["observed"] is True
    assert "observed" not in call(gateway, "kit.export", {"configuration": {}}).json()


def test_context_reaches_the_plugin(gateway):
    options = {"connection": dict(CONNECTION, unencrypted={"mode": "context"})}
    assert call(gateway, "kit.pingAgain", options).json() == {
        "statusCode": 200,
        "function": "pingAgain",
        "wire": "kit.pingAgain",
        "connection": "conn-1",
        "remaining": True,
    }


# -- Plugin outcomes ---------------------------------------------------------------


def options_with(mode):
    return {"connection": dict(CONNECTION, unencrypted={"mode": mode})}


def test_ping_credentials_refused_is_a_401_result(gateway):
    r = call(gateway, "kit.ping", options_with("refuse"))
    assert r.status_code == 200
    assert r.json() == {
        "statusCode": 401,
        "errors": [{"code": "unauthorized", "message": "login with password ******** was refused"}],
    }


def test_ping_offline_is_a_401_result(gateway):
    r = call(gateway, "kit.ping", options_with("offline"))
    assert r.json()["statusCode"] == 401
    assert r.json()["errors"][0]["code"] == "connection_offline"


def test_plain_exception_is_422_with_class_name_and_scrubbed_message(gateway):
    r = call(gateway, "kit.ping", options_with("boom"))
    assert r.status_code == 422
    assert errors(r) == [{"code": "ValueError", "message": "driver failed while sending ********"}]


def test_exception_code_attribute_wins(gateway):
    r = call(gateway, "kit.ping", options_with("coded"))
    assert errors(r) == [{"code": "quota_exceeded", "message": "daily quota used up"}]


def test_ping_result_must_be_an_object(gateway):
    r = call(gateway, "kit.ping", options_with("string"))
    assert r.status_code == 422
    assert errors(r)[0]["code"] == "invalid_extension_response"


def test_export_offline_takes_the_connection_offline(gateway):
    r = call(gateway, "kit.export", {"connection": CONNECTION, "configuration": {"raise": "offline"}})
    assert r.status_code == 200
    body = r.json()
    assert body["connectionOffline"] is True and body["data"] == []
    assert body["errors"][0]["code"] == "connection_offline"


def test_export_pages_until_last_page(gateway):
    state, seen, calls = None, [], 0
    while True:
        calls += 1
        r = call(
            gateway,
            "kit.export",
            {"connection": CONNECTION, "state": state, "configuration": {"records": 2, "pages": 3}},
        )
        page = r.json()
        seen += [rec["n"] for rec in page["data"]]
        if page["lastPage"]:
            break
        state = page["state"]
    assert calls == 3 and seen == list(range(6))


def test_export_test_type_honours_limit(gateway):
    r = call(gateway, "kit.export", {"type": "test", "test": {"limit": 1}, "configuration": {"records": 5}})
    assert len(r.json()["data"]) == 1 and r.json()["lastPage"] is True


@pytest.mark.parametrize("variant, fragment", [("nolastpage", "lastPage"), ("list", "object with data")])
def test_export_result_shape_is_checked(gateway, variant, fragment):
    r = call(gateway, "kit.export", {"configuration": {"return": variant}})
    (entry,) = errors(r)
    assert entry["code"] == "invalid_extension_response" and fragment in entry["message"]


def test_import_one_result_per_record(gateway):
    records = [{"id": "a"}, {"id": "b", "bad": True}, {"id": "c"}]
    r = call(gateway, "kit.import", {"connection": CONNECTION, "postMapData": records, "preMapData": records})
    assert r.json() == [
        {"statusCode": 200, "id": "a"},
        {"statusCode": 422, "errors": [{"code": "ValueError", "message": "record 1 is bad"}]},
        {"statusCode": 200, "id": "c"},
    ]


def test_import_count_mismatch_is_refused(gateway):
    r = call(gateway, "kit.import", {"postMapData": [{"id": 1}, {"id": 2}], "configuration": {"drop": 1}})
    (entry,) = errors(r)
    assert entry["code"] == "invalid_extension_response"
    assert "1 results for 2 records" in entry["message"]


def test_import_credentials_refused_fails_every_record(gateway):
    r = call(
        gateway,
        "kit.import",
        {"connection": CONNECTION, "postMapData": [{}, {}], "configuration": {"raise": "refused"}},
    )
    assert (
        r.json()
        == [{"statusCode": 401, "errors": [{"code": "unauthorized", "message": "token ******** expired"}]}]
        * 2
    )


def test_import_needs_post_map_data(gateway):
    (entry,) = errors(call(gateway, "kit.import", {"connection": CONNECTION}))
    assert entry == {"code": "invalid_field", "message": "options.postMapData must be an array of records."}


def test_call_past_its_deadline_gets_a_shaped_error(gateway):
    # The session gateway's call_timeout is 2 s.
    r = call(gateway, "kit.export", {"configuration": {"sleep": 4}}, timeout=10)
    assert r.status_code == 504
    assert errors(r) == [
        {"code": "deadline_exceeded", "message": "kit.export did not finish within 2 seconds."}
    ]


# -- Declared schemas ------------------------------------------------------------------


def test_declared_schemas_report_every_problem_and_never_echo_secrets(gateway):
    options = {
        "connection": {"unencrypted": {"port": "x"}, "encrypted": {"password": "short"}},
        "configuration": {"pageSize": 0},
    }
    r = call(gateway, "strict.export", options)
    assert r.status_code == 422
    assert errors(r) == [
        {"code": "invalid_field", "message": "connection.unencrypted.host: Missing data for required field."},
        {"code": "invalid_field", "message": "connection.unencrypted.port: Not a valid integer."},
        {"code": "invalid_field", "message": "connection.encrypted.password: Shorter than minimum length 8."},
        {"code": "invalid_field", "message": "configuration.table: Missing data for required field."},
        {
            "code": "invalid_field",
            "message": "configuration.pageSize: Must be greater than or equal to 1 "
            "and less than or equal to 10000.",
        },
    ]
    assert "short" not in r.text


def test_declared_schemas_hand_loaded_values_to_the_plugin(gateway):
    options = {"connection": {"unencrypted": {"host": "db"}, "encrypted": {"password": "longenough"}}}
    assert call(gateway, "strict.ping", options).json() == {"statusCode": 200, "port": 5432, "host": "db"}


# -- Results: serialisation and size -------------------------------------------------------


def test_database_types_are_serialised(gateway):
    r = call(gateway, "kit.export", {"configuration": {"return": "types"}})
    assert r.status_code == 200
    assert '"amount":12.3400' in r.text and '"big":12345678901234567890.123456789' in r.text
    (record,) = r.json()["data"]
    assert record["when"] == "2026-11-30T12:00:05+00:00"
    assert record["day"] == "2026-01-02"
    assert record["uid"] == "12345678-1234-5678-1234-567812345678"
    assert record["raw"] == base64.b64encode(b"\x00\x01wrapgate").decode()


def test_arbitrary_object_is_an_invalid_response(gateway):
    r = call(gateway, "kit.export", {"configuration": {"return": "object"}})
    assert r.status_code == 422
    assert errors(r) == [
        {"code": "invalid_extension_response", "message": "Extension response is not serializable."}
    ]


@pytest.mark.parametrize(
    "size, limit, ok",
    [
        (1000, 1000, True),
        (1001, 1000, False),
        (1000, "1000", True),
        (1001, "1000", False),
        (5 * 1024 * 1024, 0, True),
        (5 * 1024 * 1024 + 1, 0, False),
        (5 * 1024 * 1024 + 1, None, False),
        (6 * 1024 * 1024, 7 * 1024 * 1024, True),
    ],
)
def test_max_response_size(gateway, size, limit, ok):
    extra = {} if limit is None else {"maxResponseSize": limit}
    r = call(gateway, "kit.export", {"configuration": {"bytes": size}}, **extra)
    if ok:
        assert r.status_code == 200 and len(r.content) == size
    else:
        effective = int(limit) if limit else 5 * 1024 * 1024
        assert r.status_code == 422
        assert errors(r) == [
            {
                "code": "response_size_exceeded",
                "message": f"response stream exceeded limit of {effective} bytes.",
            }
        ]


@pytest.mark.parametrize("limit", ["abc", -5, True])
def test_max_response_size_must_be_a_positive_number(gateway, limit):
    (entry,) = errors(call(gateway, "kit.ping", maxResponseSize=limit))
    assert entry["code"] == "invalid_field" and "maxResponseSize" in entry["message"]


# -- Every non-200 is shaped JSON ---------------------------------------------------------------


def test_malformed_json_is_400(gateway):
    r = post(gateway.url, data=b'{"diy": true,')
    assert r.status_code == 400
    (entry,) = errors(r)
    assert entry["code"] == "invalid_json"


def test_empty_body_is_the_three_missing_fields(gateway):
    r = post(gateway.url, data=b"")
    assert errors(r) == [NEED, FN_MISSING, OPTS]


def test_unknown_route_is_404(gateway):
    r = requests.get(gateway.url + "/nowhere")
    assert r.status_code == 404 and errors(r)[0]["code"] == "not_found"


def test_wrong_method_is_405(gateway):
    r = requests.get(gateway.url + "/function")
    assert r.status_code == 405 and errors(r)[0]["code"] == "method_not_allowed"
    assert r.headers["Allow"] == "OPTIONS, POST"
    r = requests.put(gateway.url + "/")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, OPTIONS"  # sorted, every time


@pytest.mark.parametrize(
    "path, methods", [("/function", ["OPTIONS", "POST"]), ("/", ["GET", "HEAD", "OPTIONS"])]
)
def test_options_answers_the_allowed_methods_in_json(gateway, path, methods):
    r = requests.options(gateway.url + path)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"  # not an empty text/html page
    assert r.json() == {"allow": methods}
    assert r.headers["Allow"] == ", ".join(methods)


def test_body_over_the_limit_is_413(gateway):
    r = post(gateway.url, data=b" " * (50 * 1024 * 1024 + 1))
    assert r.status_code == 413
    assert errors(r) == [
        {"code": "request_entity_too_large", "message": "Request body exceeds the limit of 52428800 bytes."}
    ]


def test_large_import_batch_is_accepted(gateway):
    # Import batches are large: 45 MB of records must go through.
    records = [{"id": str(i), "pad": "x" * 4000} for i in range(12000)]
    data = json.dumps({"diy": True, "function": "kit.import", "options": {"postMapData": records}}).encode()
    assert len(data) > 45 * 1024 * 1024
    r = post(gateway.url, data=data, timeout=60)
    assert r.status_code == 200 and len(r.json()) == 12000


# -- Health ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/healthCheck"])
def test_health(gateway, path):
    assert requests.get(gateway.url + path).json() == {"success": True}


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
def test_probes(gateway, path):
    assert requests.get(gateway.url + path).status_code == 200


@pytest.mark.parametrize("path", ["/openConnections", "/stopServer"])
def test_reference_drain_helpers_are_not_served(gateway, path):
    assert requests.get(gateway.url + path).status_code == 404


# -- Secrets never reach the log ---------------------------------------------------------------------


def test_secret_never_reaches_the_log(gateway):
    for mode in ("refuse", "boom", "log"):
        call(gateway, "kit.ping", options_with(mode))
    call(
        gateway,
        "kit.import",
        {"connection": CONNECTION, "postMapData": [{}], "configuration": {"raise": "refused"}},
    )
    log = gateway.log()
    assert "plugin says the password is ********" in log  # the plugin's line was logged...
    assert SECRET not in log  # ...without the secret
    assert TOKEN not in log and ROTATED not in log


# -- Every type of function (issue: a drop-in for a Node stack) -------------------------------------

HOOK_OPTIONS = {"bearerToken": "one-time-token-123456", "_integrationId": "int-1", "key": "v"}


@pytest.mark.parametrize(
    ("group", "function", "kind"),
    [
        ("hook", "flow.hook", "hook"),
        ("hooks", "flow.preSavePage", "preSavePage"),
        ("installer", "flow.installer", "installer"),
        ("uninstaller", "flow.uninstaller", "uninstaller"),
        ("setting", "flow.setting", "setting"),
        ("settings", "flow.setting", "setting"),
        ("utility", "flow.utility", "utility"),
        ("utilities", "flow.utility", "utility"),
        (None, "flow.installer", "installer"),
        ("", "flow.utility", "utility"),
    ],
)
def test_each_type_reaches_its_kind_of_hook(gateway, group, function, kind):
    options = dict(HOOK_OPTIONS, data=[{"id": 1}])
    r = call(gateway, function, options, type=group)
    assert r.status_code == 200, r.text
    seen = r.json()["seen"] if kind == "preSavePage" else r.json()
    assert seen["context"] == {"wire": function, "kind": kind}
    assert seen["function"] == function.split(".")[1]


@pytest.mark.parametrize(
    ("group", "function"),
    [
        ("hook", "flow.installer"),
        ("installer", "flow.utility"),
        ("wrapper", "flow.hook"),
        ("setting", "kit.ping"),
    ],
)
def test_a_function_of_another_group_is_not_found(gateway, group, function):
    assert errors(call(gateway, function, HOOK_OPTIONS, type=group)) == [NO_FUNCTION]


def test_hooks_receive_the_documented_fields_by_name(gateway):
    options = {
        "data": [{"id": 1}, {"id": 2}],
        "errors": [{"code": "x", "message": "y"}],
        "_exportId": "exp-1",
        "_connectionId": "con-1",
        "_flowId": "flow-1",
        "_integrationId": "int-1",
        "pageIndex": 3,
        "lastExportDateTime": "2026-01-01T00:00:00.000Z",
        "currentExportDateTime": "2026-02-01T00:00:00.000Z",
        "settings": {"s": 1},
        "configuration": {"c": 2},
        "bearerToken": "one-time-token-123456",
        "unrelated": True,
    }
    r = call(gateway, "flow.preSavePage", options, type="hook")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] == options["data"]
    expected = {k: v for k, v in options.items() if k != "unrelated"}
    assert body["seen"] == {**expected, "function": "preSavePage", "context": body["seen"]["context"]}


def test_absent_fields_are_none(gateway):
    r = call(gateway, "flow.setting", {"x": 1}, type="setting")
    assert r.json()["pending"] is None and r.json()["bearerToken"] is None


@pytest.mark.parametrize(
    ("function", "options", "seen_in"),
    [
        ("flow.preMap", {"data": [{"a": 1}, {"a": 2}]}, "data"),
        ("flow.postMap", {"preMapData": [{"a": 1}], "postMapData": [{"b": 1}]}, "postMapData"),
        (
            "flow.postSubmit",
            {"postMapData": [{"b": 1}], "responseData": [{"statusCode": 200, "id": "9"}]},
            "responseData",
        ),
        ("flow.postResponseMap", {"postResponseMapData": [{"r": 1}, {"r": 2}]}, "postResponseMapData"),
    ],
)
def test_record_hooks_answer_one_entry_per_record(gateway, function, options, seen_in):
    r = call(gateway, function, options, type="hook")
    assert r.status_code == 200, r.text
    assert len(r.json()) == len(options[seen_in])
    assert r.json()[0]["seen"][seen_in] == options[seen_in]


def test_an_integration_app_reaches_its_own_plugins(gateway):
    body = {"_connectorId": "app-2", "type": "installer", "function": "ref.runInstallerSuccessStep"}
    r = post(gateway.url, dict(body, options={"_integrationId": "i-9"}))
    assert r.json() == {"_integrationId": "i-9", "function": "runInstallerSuccessStep"}
    # ...and not another's: kit is served to app-1 only.
    r = post(
        gateway.url, {"_connectorId": "app-2", "type": "wrapper", "function": "kit.ping", "options": {"a": 1}}
    )
    assert errors(r) == [NO_FUNCTION]


def test_a_hook_that_raises_credentials_refused_fails_the_call(gateway):
    # Hooks have no connection to take offline: a plain shaped 422, not a 401 answer.
    r = call(gateway, "ref.fail", {"error": "coded"}, type="hook")
    assert r.status_code == 422
    assert errors(r) == [{"code": "quota_exceeded", "message": "daily quota used up"}]


def test_a_secret_in_a_hook_error_is_masked(gateway):
    r = call(gateway, "ref.fail", {"error": "secret", "bearerToken": "one-time-token-123456"}, type="hook")
    assert errors(r) == [{"code": "Error", "message": "token ******** was refused"}]


# Answers integrator.io would misread are refused, naming the function and the problem.
SHAPES = [
    ("ref.savePage", {"data": [{}], "resp": [1]}, "ref.savePage (preSavePage) must return an object with data as an array of records."),
    ("ref.savePage", {"data": [{}], "resp": {"data": {}}}, "ref.savePage (preSavePage) must return an object with data as an array of records."),
    ("ref.savePage", {"data": [{}], "resp": {"data": [], "errors": "no"}}, "ref.savePage (preSavePage) must return errors as an array."),
    ("ref.savePage", {"data": [{}], "resp": {"data": [], "abort": "yes"}}, "ref.savePage (preSavePage) must return abort as true or false."),
    ("ref.mapBefore", {"data": [{}, {}], "resp": {"data": []}}, "ref.mapBefore (preMap) must return an array with one entry per record of data."),
    ("ref.mapBefore", {"data": [{}, {}], "resp": [{}]}, "ref.mapBefore (preMap) returned 1 results for 2 records of data; it must return exactly one per record."),
    ("ref.mapBefore", {"data": [{}], "resp": ["x"]}, "ref.mapBefore (preMap) result 0 must be an object."),
    ("ref.mapAfter", {"postMapData": [{}], "resp": []}, "ref.mapAfter (postMap) returned 0 results for 1 records of postMapData; it must return exactly one per record."),
    ("ref.afterSubmit", {"responseData": [{}, {}], "resp": [{}]}, "ref.afterSubmit (postSubmit) returned 1 results for 2 records of responseData; it must return exactly one per record."),
    ("ref.afterResponseMap", {"postResponseMapData": [{}], "resp": None}, "ref.afterResponseMap (postResponseMap) must return an array with one entry per record of postResponseMapData."),
]  # fmt: skip


@pytest.mark.parametrize(("function", "options", "message"), SHAPES)
def test_hook_answers_of_the_wrong_shape_are_refused(gateway, function, options, message):
    r = call(gateway, function, options, type="hook")
    assert r.status_code == 422
    assert errors(r) == [{"code": "invalid_extension_response", "message": message}]


@pytest.mark.parametrize(
    ("function", "options", "field"),
    [
        ("ref.savePage", {}, "data"),
        ("ref.mapBefore", {"data": {"a": 1}}, "data"),
        ("ref.mapAfter", {"preMapData": []}, "postMapData"),
        ("ref.afterSubmit", {"postMapData": []}, "responseData"),
        ("ref.afterResponseMap", {"responseData": []}, "postResponseMapData"),
    ],
)
def test_hook_input_that_is_not_records_is_refused_before_the_call(gateway, function, options, field):
    r = call(gateway, function, options, type="hook")
    assert errors(r) == [
        {"code": "invalid_field", "message": f"options.{field} must be an array of records."}
    ]


def test_free_form_hooks_pass_any_json_through(gateway):
    for value in (None, False, 0, "text", {}, [1, "a"]):
        r = call(gateway, "ref.echoResponse", {"resp": value}, type="hook")
        assert (r.status_code, r.json()) == (200, value)


# -- Bodies that are not JSON are not read ---------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/vnd.api+json", None]
)
def test_a_body_of_another_type_is_not_parsed(gateway, content_type):
    body = json.dumps({"diy": True, "function": "kit.ping", "options": {"connection": CONNECTION}}).encode()
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    r = post(gateway.url, data=body, headers=headers)
    assert r.status_code == 422
    assert errors(r) == [NEED, FN_MISSING, OPTS]


def test_a_token_in_a_body_of_another_type_is_not_seen(gateway):
    body = {"diy": True, "function": "kit.ping", "options": {"a": 1}, "access_token": TOKEN}
    r = post(gateway.url, data=json.dumps(body).encode(), token=None, headers={"Content-Type": "text/plain"})
    assert r.status_code == 401


def test_json_with_a_charset_is_parsed(gateway):
    body = {"diy": True, "function": "kit.ping", "options": {"connection": CONNECTION}}
    r = post(gateway.url, body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.json() == {"statusCode": 200}


# -- maxResponseSize counts UTF-16 code units, as the reference ------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "passes"),
    [
        ("é" * 10, 12, True),
        ("é" * 10, 11, False),
        ("😀" * 5, 12, True),
        ("😀" * 5, 11, False),
        ("a" * 10, 12, True),
    ],
)
def test_max_response_size_counts_as_javascript_does(gateway, text, limit, passes):
    r = call(gateway, "ref.echoResponse", {"resp": text}, type="hook", maxResponseSize=limit)
    if passes:
        assert (r.status_code, r.json()) == (200, text)
    else:
        assert errors(r) == [
            {"code": "response_size_exceeded", "message": f"response stream exceeded limit of {limit} bytes."}
        ]
