"""marshmallow schemas of what integrator.io sends and what the gateway answers.

The same classes validate requests and feed the OpenAPI document, so the two
cannot drift. The request checks follow the reference stack to the letter:
its truthiness rules, its codes, its messages and its order (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validates_schema

from .errors import InvalidRequest

# The reference's messages, word for word (typos included: clients match them).
NEED_DIY_OR_CONNECTOR = {
    "code": "missing_required_field",
    "message": "Need to set either the diy or _connectorId field in extension options.",
}
DIY_NOT_SERVED = {
    "code": "missing_required_field",
    "message": "DIY is not configured in the extension configuration.",
}
CONNECTOR_ID_NOT_SERVED = {
    "code": "invalid_field",
    "message": "The _connectorId set in the extension options does't match any "
    "of the _connectorId's present in extension configuration.",
}
FUNCTION_MISSING = {
    "code": "missing_required_field",
    "message": "Missing required field function in the extension options.",
}
FUNCTION_NOT_STRING = {
    "code": "invalid_field",
    "message": "The function field in the extension options must be of type string.",
}
OPTIONS_MISSING = {"code": "missing_required_field", "message": "Function options haven't been provided."}


def truthy(value: Any) -> bool:
    """JavaScript truthiness, which the reference applies to the call's fields:
    "" / 0 / false / null are missing; {} and [] are present."""
    if isinstance(value, (dict, list)):
        return True
    return bool(value)


def js_text(value: Any) -> str:
    """``value`` as JavaScript's ``String(value)`` writes it (the reference puts
    the call's ``type`` into a message that way)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if item is None else js_text(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


class ExtensionOptions(Schema):
    """The body of ``POST /function``. Unknown fields are kept (``access_token``,
    fields a newer integrator.io may add) and ignored."""

    class Meta:
        unknown = INCLUDE

    diy = fields.Raw(
        allow_none=True, metadata={"type": "boolean", "description": "true for a DIY integration"}
    )
    _connectorId = fields.Raw(
        allow_none=True,
        data_key="_connectorId",
        metadata={
            "type": "string",
            "description": "integration app id; one of diy / _connectorId is required",
        },
    )
    function = fields.Raw(
        allow_none=True,
        metadata={
            "type": "string",
            "description": "wire name '<connector>.<function>' or a configured alias",
        },
    )
    type = fields.Raw(
        allow_none=True,
        metadata={
            "type": "string",
            "description": "the group: wrapper, hook, installer, uninstaller, setting, utility "
            "(or the plural), or absent for a function of any group",
        },
    )
    options = fields.Raw(
        allow_none=True, metadata={"type": "object", "description": "the function's own arguments"}
    )
    maxResponseSize = fields.Raw(
        allow_none=True,
        metadata={
            "type": "integer",
            "description": "largest answer, in UTF-16 code units of its JSON text; 0 or absent means 5 MiB",
        },
    )

    def __init__(self, *, serves_diy: bool = True, connector_ids: Mapping | None = None, **kwargs):
        super().__init__(**kwargs)
        self.serves_diy = serves_diy
        self.connector_ids = connector_ids or {}

    @validates_schema
    def _reference_checks(self, data: Mapping[str, Any], **_: Any) -> None:
        problems = self.problems(data)
        if problems:
            raise ValidationError(problems)

    def problems(self, data: Mapping[str, Any]) -> list[dict[str, str]]:
        """Every failed check of the body ``data`` at once, in the reference's order
        (every field is ``Raw``: these checks are all the schema makes)."""
        problems = []
        if truthy(data.get("diy")):
            if not self.serves_diy:
                problems.append(DIY_NOT_SERVED)
        elif truthy(data.get("_connectorId")):
            if str(data["_connectorId"]) not in self.connector_ids:
                problems.append(CONNECTOR_ID_NOT_SERVED)
        else:
            problems.append(NEED_DIY_OR_CONNECTOR)
        if not truthy(data.get("function")):
            problems.append(FUNCTION_MISSING)
        elif not isinstance(data["function"], str):
            problems.append(FUNCTION_NOT_STRING)
        if not truthy(data.get("options")):
            problems.append(OPTIONS_MISSING)
        elif not isinstance(data["options"], dict):
            problems.append({"code": "invalid_field", "message": "options must be a JSON object."})
        size = data.get("maxResponseSize")
        if size not in (None, 0, "", False) and max_response_size(size, 1) is None:
            problems.append(
                {"code": "invalid_field", "message": "maxResponseSize must be a positive number of bytes."}
            )
        return problems


def max_response_size(value: Any, default: int) -> int | None:
    """The byte limit ``maxResponseSize`` asks for: 0 or absent means ``default``;
    a numeric string limits as its number does (as in the reference). None when
    it is no positive number."""
    if value in (None, 0, "", False):
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or value != value or value <= 0:
        return None
    return int(value) if value != float("inf") else None


def load_extension_options(schema: ExtensionOptions, body: Any) -> dict[str, Any]:
    """Validate a parsed body; raises :class:`InvalidRequest` listing every problem."""
    if not isinstance(body, dict):
        # An array or a scalar is missing everything the reference looks for.
        body = {}
    if not schema.problems(body):
        # What marshmallow's load returns for a valid body (every field Raw, unknown
        # ones kept), for a twentieth of its cost: it runs only to explain a refusal.
        return dict(body)
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise InvalidRequest(errors=validation_entries(exc.messages)) from None


def validation_entries(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """marshmallow's nested ``{"field": ["message"]}`` as a flat ``errors`` list."""
    entries: list[dict[str, str]] = []
    if isinstance(messages, dict) and {"code", "message"} <= set(messages):
        return [dict(messages)]
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            entries.extend(validation_entries(value, path))
    elif isinstance(messages, list):
        for item in messages:
            entries.extend(validation_entries(item, prefix))
    else:
        text = str(messages)
        entries.append({"code": "invalid_field", "message": f"{prefix}: {text}" if prefix else text})
    return entries


# -- Answers (used for the OpenAPI document) -----------------------------------


class ErrorEntry(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)


class ErrorBody(Schema):
    errors = fields.List(fields.Nested(ErrorEntry), required=True)


class PingResult(Schema):
    statusCode = fields.Integer(required=True)
    errors = fields.List(fields.Nested(ErrorEntry))


class ExportResult(Schema):
    data = fields.List(fields.Raw(), required=True)
    lastPage = fields.Boolean(required=True)
    state = fields.Raw(allow_none=True)
    errors = fields.List(fields.Nested(ErrorEntry))
    connectionOffline = fields.Boolean()


class ImportEntry(Schema):
    statusCode = fields.Integer(required=True)
    id = fields.String()
    ignored = fields.Boolean()
    errors = fields.List(fields.Nested(ErrorEntry))


class PreSavePageResult(Schema):
    data = fields.List(fields.Raw(), required=True)
    errors = fields.List(fields.Nested(ErrorEntry))
    abort = fields.Boolean()
    newErrorsAndRetryData = fields.List(fields.Raw())


class Health(Schema):
    success = fields.Boolean(required=True)
