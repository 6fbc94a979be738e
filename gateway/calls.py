"""The data path of one ``POST /function`` call, top to bottom.

validate the extension options and parse them into a :class:`~gateway.parsed.Call`
→ find the function (group by ``type``, plugin, kind) → build the context →
the hook's arguments, a wrapper's sections validated → limit → call under a
deadline → check the answer for its kind and serialise it → shape any error →
tell the ``wrapgate_call_done`` observers (:meth:`Registry.notify`). HTTP is
not this module's business: :meth:`Gateway.call` takes a parsed body and
returns an :class:`Answer` (status, JSON bytes, headers), so the CLI's
``wrapgate call`` runs exactly the path the web route runs.
"""

from __future__ import annotations

import contextlib
import functools
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
    connection_failed,
    shape,
)
from .hookspecs import GROUPS, KIND_GROUP
from .limits import Limiter
from .parsed import Call, Connection
from .plugins import Connector, Registry
from .schemas import ExtensionOptions, js_text, load_extension_options, truthy, validation_entries
from .scrub import NOTHING, Scrubber, scrub_result, scrubber_for

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
    #: the concurrency level the core holds this call's connection to, across every
    #: worker and host its limiter counts; None when it limits nothing (no connection,
    #: or ``limiter = "none"``)
    level: int | None = None
    _permit: Callable[[], contextlib.AbstractContextManager[Any]] | None = field(default=None, repr=False)

    def remaining(self) -> float:
        """Seconds left before the deadline: pass it on as a timeout to external calls."""
        return max(0.0, self.deadline - time.monotonic())

    def permit(self) -> contextlib.AbstractContextManager[Any]:
        """Hold one request permit of the connection for one request to the external
        system: ``with context.permit(): session.get(url)``.

        Permits are counted by the core's limiter, in the same place as the
        connection's calls (every worker of the host, or every host through Redis),
        and at most :attr:`level` are held at once across all calls of the
        connection: a plugin that sends requests side by side keeps the whole
        connection within integrator.io's promise to the external system. A
        permit counts requests only (a call's slot gives none), is waited for
        until the call's deadline at most, then raises
        :class:`~gateway.errors.ConcurrencyLimitExceeded` (429). Hold it for one
        request and take no other meanwhile: at level 1 a nested permit waits for
        itself. When :attr:`level` is None it counts nothing (a plugin may then
        bound its requests itself).
        """
        if self._permit is None:
            return contextlib.nullcontext()
        return self._permit()


@dataclass(frozen=True)
class Target:
    """The function a call names, found: its connector, name and kind."""

    connector: Connector
    wire_name: str  # "<connector>.<function>", aliases applied
    function: str
    kind: str


@contextlib.contextmanager
def _no_limit(connection: Connection) -> Iterator[None]:
    yield


class Gateway:
    """One app's calls: settings, the plugin registry and the limiter."""

    def __init__(self, settings: Settings, registry: Registry, limiter: Limiter | None = None):
        self.settings = settings
        self.registry = registry
        self.limiter = limiter
        #: what holds a call of a connection to its level (nothing without a limiter)
        self.limit: Callable[[Connection], contextlib.AbstractContextManager[Any]] = limiter or _no_limit
        # Built once: a marshmallow Schema costs more to build than to load with.
        self._options_schema = ExtensionOptions(
            serves_diy=settings.diy is not False, connector_ids=settings.connector_ids
        )

    # -- the path ---------------------------------------------------------

    def call(self, body: Any, *, request_id: str, trace_id: str | None = None) -> Answer:
        """Serve one ``POST /function`` body: the whole path, every failure shaped.
        Never raises."""
        context = CallContext(request_id=request_id, trace_id=trace_id)
        scrubber = NOTHING
        started = time.perf_counter()
        outcome = "ok"
        try:
            call = self.parse(body)
            scrubber = scrubber_for(call.connection, call.bearer_token)
            logs.bind_scrubber(scrubber)
            target = self.find(call)
            context = self.context(call, target, request_id, trace_id)
            logs.bind(
                function=target.wire_name,
                connector=context.connector,
                connection_id=context.connection_id,
                flow_id=context.flow_id,
                export_id=call.options.get("_exportId"),
                import_id=call.options.get("_importId"),
            )
            arguments = self.arguments(target, call, context)
            with self.limit(call.connection):
                result = call_with_deadline(
                    lambda: self._invoke(target, arguments, scrubber),
                    self.settings.call_timeout,
                    target.wire_name,
                )
            payload = self._serialise(target, result, arguments, call, scrubber)
            answer = Answer(200, payload, {})
        except Exception as exc:  # noqa: BLE001 - every failure is answered, shaped
            answer, outcome = self._failure(exc, context, scrubber)
        self._done(context, outcome, time.perf_counter() - started, answer)
        return answer

    # -- the steps before the plugin runs (POST /validate runs these alone) ----

    def parse(self, body: Any) -> Call:
        """``body``'s extension options validated (every problem at once) and
        parsed into typed values, once.

        :raises InvalidRequest: the body is no valid call (its ``errors`` list each problem).
        """
        request = load_extension_options(self._options_schema, body)
        return Call.parse(request, self.settings.default_max_response_size)

    def _done(self, context: CallContext, outcome: str, seconds: float, answer: Answer) -> None:
        self.registry.notify(
            "wrapgate_call_done",
            context=context,
            outcome=outcome,
            seconds=seconds,
            status=answer.status,
            response_bytes=len(answer.body),
        )

    def find(self, call: Call) -> Target:
        """The function a call names; the reference's order of checks: the group
        (``type``) first, then the function within it.

        :raises GatewayError: ``object_not_found`` (no such group), ``invalid_function``
            (no such function in it), ``connector_unavailable`` (its plugin failed to load).
        """
        group = None
        if truthy(call.type):
            group = TYPE_GROUPS.get(call.type) if isinstance(call.type, str) else None
            if group is None or group not in self._groups(call):
                raise GatewayError(
                    f"The object {js_text(call.type)} doesn't exist in the module.", code="object_not_found"
                )
        name = self.settings.aliases.get(call.function, call.function)
        connector_name, _, function = name.partition(".")
        connector = self.registry.connectors.get(connector_name)
        if connector is None or not self._serves(call, connector_name):
            raise FunctionNotFound()
        if connector.error is not None:
            raise ConnectorUnavailable(f"Connector {connector_name} failed to load: {connector.unavailable}")
        kind = connector.functions.get(function)
        if kind is None or (group is not None and KIND_GROUP[kind] != group):
            raise FunctionNotFound()
        return Target(connector, name, function, kind)

    def _groups(self, call: Call) -> set[str]:
        """The groups of the functions this call's module (DIY, or its integration
        app) serves; a connector that failed to load counts for what it claimed."""
        groups: set[str] = set()
        for name, connector in self.registry.connectors.items():
            if self._serves(call, name):
                groups.update(KIND_GROUP[kind] for kind in connector.functions.values())
                if connector.error is not None:
                    groups.add("wrappers")
        return groups

    def _serves(self, call: Call, connector: str) -> bool:
        if call.diy:
            served = self.settings.diy
            return served is True or (served is not False and connector in served)
        return connector in self.settings.connector_ids.get(str(call.connector_id), ())

    def context(
        self, call: Call, target: Target, request_id: str, trace_id: str | None = None
    ) -> CallContext:
        """The ``context`` the plugin is given (made here, and only here); its
        deadline starts now."""
        deadline = time.monotonic() + self.settings.call_timeout
        limiter, connection_id = self.limiter, call.connection.id
        level = None
        if limiter is not None:
            try:
                level = limiter.level_of(call.connection)
            except InvalidRequest:
                pass  # a concurrencyLevel that is no level: the limiter refuses the call (422)
        permit = None
        if limiter is not None and level is not None and connection_id is not None:
            permit = functools.partial(limiter.permit, connection_id, level, deadline)
        return CallContext(
            request_id=request_id,
            trace_id=trace_id,
            wire_name=target.wire_name,
            connector=target.connector.name,
            function=target.function,
            kind=target.kind,
            connection_id=call.connection.id,
            flow_id=call.flow_id,
            resource_id=call.resource_id,
            deadline=deadline,
            logger=logging.getLogger(f"gateway.plugin.{target.connector.name}"),
            level=level,
            _permit=permit,
        )

    def arguments(self, target: Target, call: Call, context: CallContext) -> dict[str, Any]:
        """The hook's keyword arguments: the fields of ``options`` its hookspec
        names, a wrapper's connection sections and configuration loaded by the
        connector's schemas.

        :raises InvalidRequest: one entry per problem (a section or the
            configuration its schema refuses, records that are no array).
        """
        options, kind = call.options, target.kind
        problems: list[dict[str, str]] = []
        arguments = {
            name: options.get(name) for name in self.registry.arguments(kind) if name not in _CORE_ARGUMENTS
        }
        arguments.update(function=target.function, options=options, context=context)
        if kind in WRAPPER_KINDS:
            arguments["connection"] = call.connection.resource
            for section in ("unencrypted", "encrypted"):
                arguments[section] = getattr(call.connection, section)
                schema = target.connector.schemas.get(section)
                if schema is not None:
                    try:
                        arguments[section] = schema.load(arguments[section])
                    except ValidationError as exc:
                        problems.extend(validation_entries(exc.messages, f"connection.{section}"))
            schema = target.connector.configuration_schema(target.function) if kind != "ping" else None
            if schema is not None:
                try:
                    configuration = options.get("configuration")
                    arguments["configuration"] = schema.load(
                        configuration if configuration is not None else {}
                    )
                except ValidationError as exc:
                    problems.extend(validation_entries(exc.messages, "configuration"))
        problems.extend(_records_problem(kind, options))
        if problems:
            raise InvalidRequest(errors=problems)
        return arguments

    def _invoke(self, target: Target, arguments: dict[str, Any], scrubber: Scrubber) -> Any:
        try:
            return target.connector.callers[target.kind](**arguments)
        except (CredentialsRefused, ConnectionOffline) as exc:
            if target.kind not in WRAPPER_KINDS:
                raise  # a hook has no connection to take offline: a plain failure
            result = connection_failed(target.kind, exc, len(arguments.get("postMapData") or ()))
            return scrub_result(target.kind, result, scrubber)

    def _serialise(
        self, target: Target, result: Any, arguments: Mapping[str, Any], call: Call, scrubber: Scrubber
    ) -> bytes:
        result = check_result(target.kind, result, arguments)
        result = scrub_result(target.kind, result, scrubber)
        try:
            payload = serialize.dumps(result)
        except TypeError as exc:
            log.warning("%s returned what JSON cannot hold: %s", target.wire_name, exc)
            raise InvalidResponse() from None
        limit = call.max_response_size
        # The reference counts the JSON text in UTF-16 code units, never more than
        # its UTF-8 bytes: only a payload of more bytes than the limit needs counting.
        if len(payload) > limit and serialize.utf16_length(payload) > limit:
            raise ResponseTooLarge(limit)
        return payload

    def _failure(self, exc: Exception, context: CallContext, scrubber: Scrubber) -> tuple[Answer, str]:
        """The shaped answer for ``exc`` and its error code."""
        status, body, headers = shape(exc)
        scrubber.scrub_errors(body["errors"])
        code = body["errors"][0]["code"]
        logs.bind(error=code)
        if not isinstance(exc, GatewayError):
            # A plugin's own exception: the caller gets its code and message,
            # the log gets the traceback (scrubbed by the log filter).
            log.warning("%s raised %s", context.wire_name or "call", code, exc_info=exc)
        return Answer(status, serialize.dumps(body), headers), code


# -- helpers ------------------------------------------------------------------


def _records_problem(kind: str, options: Mapping[str, Any]) -> list[dict[str, str]]:
    field_name = "data" if kind == "preSavePage" else RECORDS.get(kind)
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
