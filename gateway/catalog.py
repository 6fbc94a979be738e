"""What the installed connectors offer, as data, and a call's options checked without running it.

:func:`catalog` is what ``wrapgate plugins --json`` prints and ``GET /plugins``
answers: each connector with its spec (:func:`connector_spec`: functions and
the JSON Schema of its connection sections and configurations, generated from
its marshmallow schemas). :func:`validate` is ``POST /validate``: a call's
extension options checked against the gateway's rules and the connector's
schemas, every problem at once, the connector not called.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .calls import CallContext, Gateway
from .errors import FunctionNotFound, GatewayError
from .parsed import Call, Connection
from .plugins import Connector, Registry
from .scrub import scrubber_for


def json_schema(schema: Any) -> dict[str, Any] | None:
    """The JSON Schema (OpenAPI 3.0 dialect) of a marshmallow schema; None when it has none."""
    if schema is None:
        return None
    # A resolver naming no schema makes apispec inline nested schemas: one self-contained document.
    plugin = MarshmallowPlugin(schema_name_resolver=lambda schema: None)  # type: ignore[arg-type,return-value]
    APISpec("wrapgate", "0", "3.0.3", plugins=[plugin])
    assert plugin.converter is not None
    return plugin.converter.schema2jsonschema(schema)


def connector_spec(connector: Connector) -> dict[str, Any]:
    """A loaded connector's functions (wire name → kind) and the JSON Schemas of
    its ``unencrypted``/``encrypted`` sections and of each function's configuration."""
    functions = {}
    for function, kind in sorted(connector.functions.items()):
        entry: dict[str, Any] = {"kind": kind}
        if kind in ("export", "import"):
            entry["configuration"] = json_schema(connector.configuration_schema(function))
        functions[f"{connector.name}.{function}"] = entry
    return {
        "connection": {
            section: json_schema(connector.schemas.get(section)) for section in ("unencrypted", "encrypted")
        },
        "functions": functions,
    }


def catalog(registry: Registry) -> dict[str, Any]:
    """Every connector (with its spec when it loaded, its load error when not) and the extensions."""
    rows = []
    for row in registry.describe():
        connector = registry.connectors[row["name"]]
        if connector.error is None:
            try:
                row["spec"] = connector_spec(connector)
            except Exception as exc:  # noqa: BLE001 - one plugin's bad schema must not hide the others
                row["spec"] = None
                row["error"] = f"describing its schemas failed: {type(exc).__name__}: {exc}"
        rows.append(row)
    return {"connectors": rows, "extensions": list(registry.extensions)}


def validate(gateway: Gateway, body: Any) -> dict[str, Any]:
    """Check a call as :meth:`Gateway.call` would before running it, without running it.

    :returns: ``{"valid": bool, "function": wire name or None, "errors": [...]}``
        with every problem at once: the extension options' own, and, whenever the
        function names a connector, those of its connection sections, its
        configuration and its records.
    """
    options = body.get("options") if isinstance(body, dict) else None
    options = options if isinstance(options, dict) else {}
    # The body may be invalid: its secrets are masked all the same.
    token = options.get("bearerToken")
    scrubber = scrubber_for(
        Connection.parse(options.get("connection")), token if isinstance(token, str) else None
    )
    context = CallContext(request_id="validate")
    problems: list[dict[str, Any]] = []
    call: Call | None = None
    try:
        call = gateway.parse(body)
    except GatewayError as exc:
        problems.extend(exc.errors)
        # Go on to the connector's schemas when the call says which function, with what.
        if (
            isinstance(body, dict)
            and isinstance(body.get("function"), str)
            and isinstance(body.get("options"), dict)
        ):
            try:
                call = Call.parse({"diy": True, **body}, gateway.settings.default_max_response_size)
            except GatewayError as again:
                problems.extend(again.errors)
    if call is not None:
        try:
            target = gateway.find(call)
            context = gateway.context(call, target, "validate")
            gateway.arguments(target, call, context)
        except FunctionNotFound as exc:
            if not problems:  # else the request's own problems say why nothing was found
                problems.extend(exc.errors)
        except GatewayError as exc:
            problems.extend(exc.errors)
    errors = [dict(e) for e in problems]
    scrubber.scrub_errors(errors)
    return {"valid": not errors, "function": context.wire_name or None, "errors": errors}
