"""The data path of one ``POST /function`` call, top to bottom.

validate the extension options → find the connector → validate its sections →
limit → call under a deadline → check and serialise the result → shape any
error. HTTP is not this module's business: :meth:`Gateway.call` takes a parsed
body and returns an :class:`Answer` (status, JSON bytes, headers), so the CLI's
``wrapgate call`` runs exactly the path the web route runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from marshmallow import ValidationError

from . import logs, serialize
from .config import Settings
from .deadline import call_with_deadline
from .errors import (
    ConnectionOffline,
    ConnectorUnavailable,
    CredentialsRefused,
    FunctionNotFound,
    GatewayError,
    InvalidRequest,
    InvalidResponse,
    ResponseTooLarge,
    entry_from_exception,
    shape,
)
from .hookspecs import GROUPS, KIND_GROUP
from .plugins import Connector, Registry
from .schemas import (
    ExtensionOptions,
    js_text,
    load_extension_options,
    max_response_size,
    truthy,
    validation_entries,
)
from .scrub import NOTHING, Scrubber, scrubber_for

log = logging.getLogger("gateway.calls")

# `type` -> the group of functions it names: the reference accepts the group's
# own name and, for four of them, the singular. A falsy type means "top level"
# (flat): a function of any group, found by its name alone.
TYPE_GROUPS = {
    **{group: group for group in GROUPS},
    "wrapper": "wrappers",
    "hook": "hooks",
    "setting": "settings",
    "utility": "utilities",
}
WRAPPER_KINDS = GROUPS["wrappers"]
# Kinds whose input is an array of records, and the answer one entry per record.
RECORDS = {
    "import": "postMapData",
    "preMap": "data",
    "postMap": "postMapData",
    "postSubmit": "responseData",
    "postResponseMap": "postResponseMapData",
}
# Arguments every call hook gets that are not a field of options.
_CORE_ARGUMENTS = frozenset(("function", "options", "context"))


class Answer(NamedTuple):
    status: int
    body: bytes
    headers: Mapping[str, str]


@dataclass
class CallContext:
    """What a plugin may know about the call it serves (the ``context`` argument)."""

    request_id: str
    trace_id: str | None = None
    wire_name: str = ""
    connector: str = ""
    function: str = ""
    kind: str = ""
    connection_id: str | None = None
    flow_id: str | None = None
    resource_id: str | None = None  # _exportId or _importId
    deadline: float = 0.0  # time.monotonic() value
    logger: logging.Logger = field(default=logging.getLogger("gateway.plugin"))

    def remaining(self) -> float:
        """Seconds left before the deadline: pass it on as a timeout to external calls."""
        return max(0.0, self.deadline - time.monotonic())


@contextlib.contextmanager
def _no_limit(context: CallContext, options: Mapping) -> Iterator[None]:
    yield


class Gateway:
    """One app's calls: settings, the plugin registry and the limiter."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        limit: Callable[[CallContext, Mapping], Any] | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.limit = limit or _no_limit
        # Built once: a marshmallow Schema costs more to build than to load with.
        self._options_schema = ExtensionOptions(
            serves_diy=settings.diy is not False, connector_ids=settings.connector_ids
        )
        #: called after every call with (context, outcome, seconds, answer): metrics and the like
        self.observers: list[Callable[[CallContext, str, float, Answer], None]] = []

    # -- the path ---------------------------------------------------------

    def call(self, body: Any, *, request_id: str, trace_id: str | None = None) -> Answer:
        context = CallContext(request_id=request_id, trace_id=trace_id)
        scrubber = NOTHING
        started = time.perf_counter()
        outcome = "ok"
        try:
            request = load_extension_options(self._options_schema, body)
            options = request["options"]
            scrubber = scrubber_for(options)
            logs.bind_scrubber(scrubber)
            connector, kind = self._find(request, context)
            _describe(context, options)
            logs.bind(
                function=context.wire_name,
                connector=context.connector,
                connection_id=context.connection_id,
                flow_id=context.flow_id,
                export_id=options.get("_exportId"),
                import_id=options.get("_importId"),
            )
            arguments = self._arguments(connector, kind, options, context)
            context.deadline = time.monotonic() + self.settings.call_timeout
            with self.limit(context, options):
                result = call_with_deadline(
                    lambda: self._invoke(connector, kind, arguments, scrubber),
                    self.settings.call_timeout,
                    context.wire_name,
                )
            payload = self._serialise(kind, result, arguments, request, scrubber)
            answer = Answer(200, payload, {})
        except Exception as exc:  # noqa: BLE001 - every failure is answered, shaped
            answer, outcome = self._failure(exc, context, scrubber)
        seconds = time.perf_counter() - started
        for observer in self.observers:
            observer(context, outcome, seconds, answer)
        return answer

    def _find(self, request: Mapping[str, Any], context: CallContext) -> tuple[Connector, str]:
        """The connector and kind a call names; the reference's order of checks:
        the group (``type``) first, then the function within it."""
        group = None
        if truthy(request.get("type")):
            group = TYPE_GROUPS.get(request["type"]) if isinstance(request["type"], str) else None
            if group is None or group not in self._groups(request):
                raise GatewayError(
                    f"The object {js_text(request['type'])} doesn't exist in the module.",
                    code="object_not_found",
                )
        name = self.settings.aliases.get(request["function"], request["function"])
        connector_name, _, function = name.partition(".")
        connector = self.registry.connectors.get(connector_name)
        if connector is None or not self._serves(request, connector_name):
            raise FunctionNotFound()
        if connector.error is not None:
            raise ConnectorUnavailable(f"Connector {connector_name} failed to load: {connector.error}")
        kind = connector.functions.get(function)
        if kind is None or (group is not None and KIND_GROUP[kind] != group):
            raise FunctionNotFound()
        context.wire_name, context.connector, context.function, context.kind = (
            name,
            connector_name,
            function,
            kind,
        )
        return connector, kind

    def _groups(self, request: Mapping[str, Any]) -> set[str]:
        """The groups of the functions this call's module (DIY, or its integration
        app) serves; a connector that failed to load counts for what it claimed."""
        groups: set[str] = set()
        for name, connector in self.registry.connectors.items():
            if self._serves(request, name):
                groups.update(KIND_GROUP[kind] for kind in connector.functions.values())
                if connector.error is not None:
                    groups.add("wrappers")
        return groups

    def _serves(self, request: Mapping[str, Any], connector: str) -> bool:
        diy = request.get("diy")
        if diy not in (None, False, 0, ""):
            served = self.settings.diy
            return served is True or (served is not False and connector in served)
        return connector in self.settings.connector_ids.get(str(request.get("_connectorId")), ())

    def _arguments(
        self, connector: Connector, kind: str, options: Mapping[str, Any], context: CallContext
    ) -> dict[str, Any]:
        """The hook's keyword arguments, its declared schemas applied."""
        context.logger = logging.getLogger(f"gateway.plugin.{connector.name}")
        if kind not in WRAPPER_KINDS:
            return self._hook_arguments(kind, options, context)
        connection = options.get("connection")
        connection = connection if isinstance(connection, dict) else {}
        problems: list[dict[str, str]] = []
        sections = {}
        for section in ("unencrypted", "encrypted"):
            raw = _section(connection, section)
            schema = connector.schemas.get(section)
            if schema is None:
                sections[section] = raw
                continue
            try:
                sections[section] = schema.load(raw)
            except ValidationError as exc:
                problems.extend(validation_entries(exc.messages, f"connection.{section}"))
        arguments: dict[str, Any] = {
            "function": context.function,
            "connection": connection,
            "options": options,
            "context": context,
            **sections,
        }
        if kind in ("export", "import"):
            configuration = options.get("configuration")
            schema = connector.configuration_schema(context.function)
            if schema is not None:
                try:
                    configuration = schema.load(configuration if configuration is not None else {})
                except ValidationError as exc:
                    problems.extend(validation_entries(exc.messages, "configuration"))
            arguments.update(
                configuration=configuration,
                settings=options.get("settings"),
                bearerToken=options.get("bearerToken"),
            )
        if kind == "export":
            arguments.update(
                {key: options.get(key) for key in ("type", "delta", "once", "test", "state", "data")}
            )
        elif kind == "import":
            problems.extend(_records_problem(kind, options))
            arguments.update(postMapData=options.get("postMapData"), preMapData=options.get("preMapData"))
        if problems:
            raise InvalidRequest(errors=problems)
        return arguments

    def _hook_arguments(self, kind: str, options: Mapping[str, Any], context: CallContext) -> dict[str, Any]:
        """Every other kind gets the fields of ``options`` its hookspec names."""
        problems = _records_problem(kind, options)
        if kind == "preSavePage" and not isinstance(options.get("data"), list):
            problems.append({"code": "invalid_field", "message": "options.data must be an array of records."})
        if problems:
            raise InvalidRequest(errors=problems)
        arguments = {
            name: options.get(name) for name in self.registry.arguments(kind) if name not in _CORE_ARGUMENTS
        }
        arguments.update(function=context.function, options=options, context=context)
        return arguments

    def _invoke(self, connector: Connector, kind: str, arguments: dict[str, Any], scrubber: Scrubber) -> Any:
        try:
            return connector.callers[kind](**arguments)
        except (CredentialsRefused, ConnectionOffline) as exc:
            if kind not in WRAPPER_KINDS:
                raise  # a hook has no connection to take offline: a plain failure
            entry = entry_from_exception(exc)
            scrubber.scrub_errors([entry])
            # The protocol's ways of saying "this connection does not work".
            if kind == "ping":
                return {"statusCode": 401, "errors": [entry]}
            if kind == "export":
                return {"data": [], "errors": [entry], "connectionOffline": True}
            return [{"statusCode": 401, "errors": [dict(entry)]} for _ in arguments["postMapData"]]

    def _serialise(
        self,
        kind: str,
        result: Any,
        arguments: Mapping[str, Any],
        request: Mapping[str, Any],
        scrubber: Scrubber,
    ) -> bytes:
        result = check_result(kind, result, arguments)
        if scrubber:
            _scrub_result(kind, result, scrubber)
        try:
            payload = serialize.dumps(result)
        except TypeError as exc:
            log.warning("%s returned what JSON cannot hold: %s", arguments["context"].wire_name, exc)
            raise InvalidResponse() from None
        default = self.settings.default_max_response_size
        # None (no positive number) was refused with the request's other checks.
        limit = max_response_size(request.get("maxResponseSize"), default) or default
        # The reference counts the JSON text in UTF-16 code units, never more than
        # its UTF-8 bytes: only a payload of more bytes than the limit needs counting.
        if len(payload) > limit and serialize.utf16_length(payload) > limit:
            raise ResponseTooLarge(limit)
        return payload

    def _failure(self, exc: Exception, context: CallContext, scrubber: Scrubber) -> tuple[Answer, str]:
        """The shaped answer for ``exc`` and its error code."""
        status, body, headers = shape(exc)
        scrubber.scrub_errors(body["errors"])
        code = str(body["errors"][0]["code"]) if body["errors"] else "error"
        logs.bind(error=code)
        if not isinstance(exc, GatewayError):
            # A plugin's own exception: the caller gets its code and message,
            # the log gets the traceback (scrubbed by the log filter).
            log.warning("%s raised %s", context.wire_name or "call", body["errors"][0]["code"], exc_info=exc)
        try:
            payload = serialize.dumps(body)
        except TypeError:  # a plugin's exception with an unserialisable code
            code = type(exc).__name__
            payload = serialize.dumps({"errors": [{"code": code, "message": scrubber.scrub(str(exc))}]})
        return Answer(status, payload, headers), code


# -- helpers ------------------------------------------------------------------


def _section(connection: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A connection section, top level or under ``wrapper`` (integrator.io's
    connection resource nests a wrapper connection's settings there)."""
    value = connection.get(name)
    if value is None and isinstance(connection.get("wrapper"), Mapping):
        value = connection["wrapper"].get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def _describe(context: CallContext, options: Mapping[str, Any]) -> None:
    connection = options.get("connection")
    if isinstance(connection, Mapping) and connection.get("_id") is not None:
        context.connection_id = str(connection["_id"])
    context.flow_id = options.get("_flowId")
    context.resource_id = options.get("_exportId") or options.get("_importId")


def _records_problem(kind: str, options: Mapping[str, Any]) -> list[dict[str, str]]:
    field_name = RECORDS.get(kind)
    if field_name is None or isinstance(options.get(field_name), list):
        return []
    return [{"code": "invalid_field", "message": f"options.{field_name} must be an array of records."}]


def check_result(kind: str, result: Any, arguments: Mapping[str, Any]) -> Any:
    """Refuse a result integrator.io would misread; returns it (ping's None filled in)."""
    wire = arguments["context"].wire_name
    if kind == "ping":
        if result is None:
            return {"statusCode": 200}
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            raise InvalidResponse(f"{wire} must return nothing or an object with an integer statusCode.")
        return result
    if kind == "export":
        if not isinstance(result, dict):
            raise InvalidResponse(f"{wire} must return an object with data and lastPage.")
        if not isinstance(result.get("data"), list):
            raise InvalidResponse(f"{wire} must return data as an array of records.")
        if not result.get("connectionOffline") and not isinstance(result.get("lastPage"), bool):
            raise InvalidResponse(f"{wire} must return lastPage as true or false.")
        if "errors" in result and not isinstance(result["errors"], list):
            raise InvalidResponse(f"{wire} must return errors as an array.")
        return result
    if kind == "preSavePage":
        if not isinstance(result, dict) or not isinstance(result.get("data"), list):
            raise InvalidResponse(
                f"{wire} (preSavePage) must return an object with data as an array of records."
            )
        if "errors" in result and not isinstance(result["errors"], (list, type(None))):
            raise InvalidResponse(f"{wire} (preSavePage) must return errors as an array.")
        if "abort" in result and not isinstance(result["abort"], bool):
            raise InvalidResponse(f"{wire} (preSavePage) must return abort as true or false.")
        return result
    field_name = RECORDS.get(kind)
    if field_name is None:
        return result  # hook, postAggregate, installer...: free-form
    records = arguments[field_name]
    what = f"{wire} ({kind})" if kind != "import" else wire
    if not isinstance(result, list):
        raise InvalidResponse(f"{what} must return an array with one entry per record of {field_name}.")
    if len(result) != len(records):
        raise InvalidResponse(
            f"{what} returned {len(result)} results for {len(records)} records of {field_name}; "
            f"it must return exactly one per record."
        )
    for position, entry in enumerate(result):
        if kind == "import":
            if not isinstance(entry, dict) or not isinstance(entry.get("statusCode"), int):
                raise InvalidResponse(
                    f"{wire} result {position} must be an object with an integer statusCode."
                )
        elif not isinstance(entry, dict):
            raise InvalidResponse(f"{what} result {position} must be an object.")
    return result


def _scrub_result(kind: str, result: Any, scrubber: Scrubber) -> None:
    """Mask secrets in the ``errors`` of the answer shapes the core knows (the
    rest of a free-form answer is the plugin's to own)."""
    if isinstance(result, list) and kind in RECORDS:
        for entry in result:
            if isinstance(entry.get("errors"), list):
                scrubber.scrub_errors(entry["errors"])
    elif (
        isinstance(result, dict)
        and isinstance(result.get("errors"), list)
        and kind in ("ping", "export", "preSavePage")
    ):
        scrubber.scrub_errors(result["errors"])
