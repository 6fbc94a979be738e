"""gateway.schemas, unit by unit: the reference's checks and their helpers."""

import pytest
from marshmallow import ValidationError

from gateway.errors import InvalidRequest
from gateway.schemas import (
    ExtensionOptions,
    js_text,
    load_extension_options,
    max_response_size,
    truthy,
    validation_entries,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 100), (0, 100), ("", 100), (False, 100), (5, 5), ("900", 900), (" 12 ", 12), (2.5, 2),
     ("abc", None), (-1, None), (True, None), (float("inf"), None), (float("nan"), None), ([], None)],
)  # fmt: skip
def test_max_response_size(value, expected):
    assert max_response_size(value, 100) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), (0, False), (False, False), ({}, True), ([], True), ("x", True)],
)
def test_truthy_is_javascripts(value, expected):
    assert truthy(value) is expected


@pytest.mark.parametrize(
    ("value", "text"),
    [("hook", "hook"), (True, "true"), (5, "5"), (5.0, "5"), (None, "null"), ([], ""), ([1, None, "a"], "1,,a"),
     ({"a": 1}, "[object Object]")],
)  # fmt: skip
def test_js_text_writes_as_string_does(value, text):
    assert js_text(value) == text


def test_validation_entries_flatten_nested_messages():
    messages = {"a": ["bad"], "b": {"c": ["worse"]}, "_schema": ["whole"]}
    assert validation_entries(messages, "conf") == [
        {"code": "invalid_field", "message": "conf.a: bad"},
        {"code": "invalid_field", "message": "conf.b.c: worse"},
        {"code": "invalid_field", "message": "conf: whole"},
    ]
    assert validation_entries([{"code": "x", "message": "y"}]) == [{"code": "x", "message": "y"}]


def test_checks_are_reported_together_in_the_references_order():
    schema = ExtensionOptions(serves_diy=False, connector_ids={"app": ["x"]})
    with pytest.raises(InvalidRequest) as caught:
        load_extension_options(schema, {"diy": True, "function": 3, "maxResponseSize": "big"})
    assert [e["code"] for e in caught.value.errors] == [
        "missing_required_field",
        "invalid_field",
        "missing_required_field",
        "invalid_field",
    ]


def test_a_body_that_is_not_an_object_misses_everything():
    with pytest.raises(InvalidRequest) as caught:
        load_extension_options(ExtensionOptions(), [1, 2])
    assert len(caught.value.errors) == 3


BODIES = [
    {"diy": True, "function": "kit.ping", "options": {"a": 1}},
    {"diy": 1, "function": "kit.ping", "options": {}, "access_token": "t", "newField": [1]},
    {"_connectorId": "app", "function": "kit.ping", "options": {"x": None}, "type": "wrapper"},
    {"_connectorId": "other", "function": "kit.ping", "options": {"x": None}},
    {"diy": True, "function": "kit.ping", "options": {"a": 1}, "maxResponseSize": "100"},
    {"diy": True, "function": "kit.ping", "options": {"a": 1}, "maxResponseSize": -1},
    {"diy": True, "function": "kit.ping", "options": {"a": 1}, "maxResponseSize": 0},
    {"diy": "", "function": "kit.ping", "options": {"a": 1}},
    {"diy": True, "function": 7, "options": {"a": 1}},
    {"diy": True, "function": "kit.ping", "options": []},
    {"diy": True, "function": "kit.ping", "options": [1]},
    {"diy": None, "function": None, "options": None, "type": None, "maxResponseSize": None},
    {},
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("serves_diy", [True, False])
def test_the_fast_check_answers_as_marshmallows_load(body, serves_diy):
    # load_extension_options skips marshmallow for a valid body: same result, same errors.
    schema = ExtensionOptions(serves_diy=serves_diy, connector_ids={"app": ["kit"]})
    try:
        expected = schema.load(body)
    except ValidationError as exc:
        with pytest.raises(InvalidRequest) as refused:
            load_extension_options(schema, body)
        assert refused.value.errors == validation_entries(exc.messages)
    else:
        assert load_extension_options(schema, body) == expected == body
