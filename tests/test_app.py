"""In-process checks of what cannot be provoked over HTTP: an unexpected failure
inside the gateway itself, and the app factory's isolation."""

import json
import re

import pytest

from gateway import config, hookimpl
from gateway.app import create_app
from gateway.errors import GatewayError
from gateway.plugins import Registry

# What a careless plugin's error may carry: a header value that is no text, a line
# break in a header, headers the body owns, a status as text.
ODD_ERRORS = {
    "retry": dict(status=429, headers={"Retry-After": 5}),
    "crlf": dict(headers={"X-A": "a\r\nSet-Cookie: e=1"}),
    "own headers": dict(headers={"Content-Type": "text/html", "Content-Length": "1"}),
    "text status": dict(status="418"),
}


class Pinger:
    @hookimpl
    def wrapgate_ping(self, options):
        odd = ODD_ERRORS.get(options.get("odd"))
        if odd is not None:
            raise GatewayError("odd", **odd)
        return {"statusCode": 200, "from": "embedded"}


def make_app(**settings):
    registry = Registry()
    registry.register(Pinger(), "embedded")
    return create_app(config.load({}, system_tokens=["t"], **settings), registry)


def test_unexpected_failure_is_a_shaped_500_without_a_traceback(monkeypatch, caplog):
    app = make_app()
    state = app.extensions["wrapgate"]

    def explode(*args, **kwargs):
        raise RuntimeError("database handle corrupted")

    monkeypatch.setattr(state.gateway, "call", explode)  # stands in for a bug in the core
    r = app.test_client().post("/function", json={}, headers={"Authorization": "Bearer t"})
    assert r.status_code == 500
    (entry,) = r.get_json()["errors"]
    assert entry["code"] == "internal_error"
    assert "database handle" not in entry["message"] and "Traceback" not in r.get_data(as_text=True)
    assert "request" in entry["message"]


PING = {"diy": True, "function": "embedded.ping", "options": {}}
CASES = {
    "ok": dict(json=PING, headers={"Authorization": "Bearer t"}),
    "token in the body": dict(json={**PING, "access_token": "t"}),
    "token in the query": dict(json=PING, query_string={"access_token": "t"}),
    "wrong token": dict(json=PING, headers={"Authorization": "Bearer nope"}),
    "no token": dict(json=PING),
    "not json": dict(data=b"{oops", content_type="application/json", headers={"Authorization": "Bearer t"}),
    "json with parameters": dict(
        data=b'{"diy": true, "function": "embedded.ping"}',
        content_type="Application/JSON; charset=utf-8",
        headers={"Authorization": "Bearer t"},
    ),
    "another type": dict(data=b"{}", content_type="text/plain", headers={"Authorization": "Bearer t"}),
    "over the limit": dict(
        data=b" " * 2048, content_type="application/json", headers={"Authorization": "Bearer t"}
    ),
    "no call": dict(json={"diy": True}, headers={"Authorization": "Bearer t"}),
    **{
        f"plugin error, {odd}": dict(
            json={**PING, "options": {"odd": odd}}, headers={"Authorization": "Bearer t"}
        )
        for odd in ODD_ERRORS
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_post_function_answers_alike_through_the_endpoint_and_through_flask(case):
    # POST /function is served in front of Flask (gateway.endpoint); "//function" is
    # normalised by werkzeug and reaches Flask's route, which must answer the same.
    app = make_app(max_body_bytes=1024)
    answers = []
    for path in ("/function", "//function"):
        r = app.test_client().post("/function", environ_overrides={"PATH_INFO": path}, **CASES[case])
        # A 500 names its request id, different on each: the rest must match.
        body = re.sub(r"request [0-9a-f]{16}", "request <id>", r.get_data(as_text=True))
        answers.append((r.status, sorted(r.headers.items()), json.loads(body)))
    assert answers[0] == answers[1]
    status, headers, body = answers[0]
    assert status.split()[0] in ("200", "400", "401", "413", "418", "422", "429", "500"), status
    assert [value for name, value in headers if name == "Content-Type"] == ["application/json"]
    assert "errors" in body or body.get("statusCode") == 200
    metrics = app.extensions["wrapgate"].metrics.exposition()[0].decode()
    code = status.split()[0]
    assert f'wrapgate_http_requests_total{{route="/function",status="{code}"}} 2.0' in metrics


def test_status_lines_are_werkzeugs():
    r = make_app().test_client().post("/function", json={"diy": True}, headers={"Authorization": "Bearer t"})
    assert r.status == "422 UNPROCESSABLE ENTITY"


def test_apps_are_independent():
    # Two apps side by side, each with its own plugins and tokens (no module globals).
    first, second = make_app(), create_app(config.load({}, system_tokens=["u"]), Registry())
    body = {"diy": True, "function": "embedded.ping", "options": {"a": 1}}
    assert first.test_client().post(
        "/function", json=body, headers={"Authorization": "Bearer t"}
    ).get_json() == {"statusCode": 200, "from": "embedded"}
    r = second.test_client().post("/function", json=body, headers={"Authorization": "Bearer u"})
    assert r.get_json()["errors"][0]["code"] == "invalid_function"
    assert (
        second.test_client().post("/function", json=body, headers={"Authorization": "Bearer t"}).status_code
        == 401
    )


def test_diy_can_be_switched_off():
    app = make_app(diy=False)
    r = app.test_client().post(
        "/function",
        json={"diy": True, "function": "embedded.ping", "options": {"a": 1}},
        headers={"Authorization": "Bearer t"},
    )
    assert r.get_json() == {
        "errors": [
            {
                "code": "missing_required_field",
                "message": "DIY is not configured in the extension configuration.",
            }
        ]
    }


def test_diy_can_be_restricted_to_some_connectors():
    app = make_app(diy=("other",))
    r = app.test_client().post(
        "/function",
        json={"diy": True, "function": "embedded.ping", "options": {"a": 1}},
        headers={"Authorization": "Bearer t"},
    )
    assert r.get_json()["errors"][0]["code"] == "invalid_function"


def test_plugin_with_an_unknown_hook_is_refused_by_name():
    class Typo:
        @hookimpl
        def wrapgate_pnig(self):
            pass

    registry = Registry()
    registry.register(Typo(), "typo")
    assert "wrapgate_pnig" in registry.connectors["typo"].error


@pytest.mark.parametrize(
    "declared, message",
    [
        ({"bad name": "export"}, "not an identifier"),
        ({"exportX": "query"}, "kinds are"),
        ({"importX": "import"}, "no wrapgate_import"),
    ],
)
def test_bad_function_declarations_are_load_errors(declared, message):
    class Declares:
        @hookimpl
        def wrapgate_functions(self):
            return declared

        @hookimpl
        def wrapgate_export(self):
            return {"data": [], "lastPage": True}

    registry = Registry()
    registry.register(Declares(), "declares")
    assert message in registry.connectors["declares"].error


def test_openapi_lists_every_kind_of_function():
    from openapi_spec_validator import validate

    from gateway import openapi
    from gateway.plugins import Registry
    from wrapgate_testkit import reference

    registry = Registry()
    registry.register(reference, "ref")
    document = openapi.build(registry)
    validate(document)
    description = document["paths"]["/function"]["post"]["description"]
    assert "ref.savePage (preSavePage)" in description and "ref.myUtility (utility)" in description
    assert "PreSavePageResult" in document["components"]["schemas"]


def test_the_endpoint_hands_the_server_text_headers_only():
    # gunicorn refuses a header value that is no str (a 500 page of its own, not our
    # shape); werkzeug's Response turned it into text, and so does the endpoint.
    from gateway.calls import Answer
    from gateway.endpoint import _wire

    assert _wire(Answer(429, b"{}", {"Retry-After": 5})) == (429, [("Retry-After", "5")])
    assert _wire(Answer("418", b"{}", {"Content-Length": "1", "X-B": "b"})) == (418, [("X-B", "b")])
    with pytest.raises(ValueError):
        _wire(Answer(422, b"{}", {"X-A": "a\r\nSet-Cookie: e=1"}))
