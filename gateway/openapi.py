"""``/openapi.json``: the OpenAPI document, generated from the schemas that validate.

Request and answer bodies come from :mod:`gateway.schemas`; each loaded
connector's declared section and configuration schemas are added as
components (``<connector>.unencrypted``, ``<connector>.export.configuration``...),
so a client, a fuzzer or a person reads one document for the whole stack.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import __version__, schemas
from .plugins import Registry

ERRORS = {
    "400": "Malformed JSON body (invalid_json)",
    "401": "Wrong or missing token (unauthorized)",
    "403": "Served to loopback clients only: no metrics token is set and the route is not opened (forbidden)",
    "404": "No such route (not_found)",
    "405": "Wrong method (method_not_allowed)",
    "413": "Body over the configured limit (request_entity_too_large)",
    "422": "Invalid extension options, a plugin's error, an invalid result, or more secrets than the "
    "gateway masks (too_many_secrets); every problem listed",
    "429": "The connection's concurrency level is reached (concurrency_limit_exceeded), or too many wrong "
    "tokens came from this client address (too_many_failed_tokens); see Retry-After",
    "500": "Unexpected failure of the gateway (internal_error)",
    "503": "Worker overloaded, limiter unavailable or draining",
    "504": "The call passed its deadline (deadline_exceeded)",
}


def _error_responses(*codes: str) -> dict[str, Any]:
    return {
        code: {"description": ERRORS[code], "content": {"application/json": {"schema": "ErrorBody"}}}
        for code in codes
    }


def build(registry: Registry) -> dict[str, Any]:
    spec = APISpec(
        title="wrapgate",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "integrator.io Server stack: every kind of function (wrappers, flow hooks, "
            "integration-app installer, uninstaller, settings and utilities) of plugins, "
            "called as POST /function."
        },
    )
    for name, schema in (
        ("ExtensionOptions", schemas.ExtensionOptions),
        ("ErrorEntry", schemas.ErrorEntry),
        ("ErrorBody", schemas.ErrorBody),
        ("PingResult", schemas.PingResult),
        ("ExportResult", schemas.ExportResult),
        ("ImportEntry", schemas.ImportEntry),
        ("PreSavePageResult", schemas.PreSavePageResult),
        ("Health", schemas.Health),
    ):
        spec.components.schema(name, schema=schema)
    spec.components.security_scheme("systemToken", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("metricsToken", {"type": "http", "scheme": "bearer"})
    _connector_components(spec, registry)
    functions = sorted(
        f"{name}.{function} ({kind})"
        for name, connector in registry.connectors.items()
        if connector.error is None
        for function, kind in connector.functions.items()
    )
    spec.path(
        path="/function",
        operations={
            "post": {
                "summary": "Call a function of any type",
                "description": "function: '<plugin>.<function>', type: its group (docs/protocol.md). "
                "Served here (kind in brackets): " + (", ".join(functions) or "none") + ")",
                "security": [{"systemToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "ExtensionOptions"}},
                },
                "responses": {
                    "200": {
                        "description": "The function's result",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/PingResult"},
                                        {"$ref": "#/components/schemas/ExportResult"},
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/ImportEntry"},
                                        },
                                        {"$ref": "#/components/schemas/PreSavePageResult"},
                                        {"description": "other kinds: one entry per record, or any JSON"},
                                    ]
                                }
                            }
                        },
                    },
                    **_error_responses("400", "401", "413", "422", "429", "500", "503", "504"),
                },
            }
        },
    )
    health = {
        "get": {
            "summary": "Health",
            "responses": {
                "200": {"description": "Up", "content": {"application/json": {"schema": "Health"}}}
            },
        }
    }
    spec.path(path="/", operations=health)
    spec.path(path="/healthCheck", operations=health)
    spec.path(
        path="/livez",
        operations={
            "get": {"summary": "Liveness", "responses": {"200": {"description": "The process serves"}}}
        },
    )
    spec.path(
        path="/readyz",
        operations={
            "get": {
                "summary": "Readiness",
                "responses": {
                    "200": {"description": "Ready for calls"},
                    "503": {
                        "description": "Draining before shutdown (terminating)",
                        "content": {"application/json": {"schema": "ErrorBody"}},
                    },
                },
            }
        },
    )
    spec.path(
        path="/metrics",
        operations={
            "get": {
                "summary": "Prometheus metrics",
                "security": [{"metricsToken": []}],
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_error_responses("401", "403", "429"),
                },
            }
        },
    )
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "summary": "This document",
                "security": [{"metricsToken": []}],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_error_responses("401", "403", "429"),
                },
            }
        },
    )
    return spec.to_dict()


def _connector_components(spec: APISpec, registry: Registry) -> None:
    for name, connector in sorted(registry.connectors.items()):
        if connector.error is not None:
            continue
        for section, schema in connector.schemas.items():
            _add(spec, f"{name}.{section}", schema)
        for function, kind in sorted(connector.functions.items()):
            if kind in ("export", "import"):
                try:
                    schema = connector.configuration_schema(function)
                except Exception:  # noqa: BLE001 - a plugin's bug must not break the document
                    continue
                if schema is not None:
                    _add(spec, f"{name}.{function}.configuration", schema)


def _add(spec: APISpec, component: str, schema: Any) -> None:
    try:
        spec.components.schema(component, schema=schema)
    except Exception:  # noqa: BLE001 - a schema apispec cannot render is left out, not fatal
        pass
