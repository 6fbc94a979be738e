"""The call as typed values, parsed once from the validated extension options.

Everything after validation reads these values, never the raw body: finding
the function (:class:`Call`), the limiter (:class:`Connection`'s id and
level), the scrubber (its ``encrypted`` section and the call's bearer token),
the hook's arguments and the call's context. integrator.io's connection
resource nests a wrapper connection's sections under ``wrapper``; that is
known here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .schemas import max_response_size, truthy


def _section(resource: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = resource.get(name)
    if value is None and isinstance(resource.get("wrapper"), Mapping):
        value = resource["wrapper"].get(name)
    return dict(value) if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Connection:
    """The connection a wrapper call runs over (``options.connection``)."""

    #: ``_id``, as text; None for calls without a connection (hooks, installers...)
    id: str | None = None
    #: ``concurrencyLevel`` as sent, None when absent (the limiter checks it)
    level: Any = None
    #: the resource as sent, untouched (``{}`` when absent or not an object)
    resource: Mapping[str, Any] = field(default_factory=dict)
    #: its sections, top level or under ``wrapper``; copies, ``{}`` when absent
    unencrypted: dict[str, Any] = field(default_factory=dict)
    encrypted: dict[str, Any] = field(default_factory=dict)
    #: every ``encrypted`` section the resource holds, top level and under
    #: ``wrapper``: all are masked, whichever one the plugin is given
    secret_sections: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def parse(cls, value: Any) -> Connection:
        if not isinstance(value, Mapping):
            return NO_CONNECTION
        return cls(
            id=str(value["_id"]) if value.get("_id") is not None else None,
            level=value.get("concurrencyLevel"),
            resource=value,
            unencrypted=_section(value, "unencrypted"),
            encrypted=_section(value, "encrypted"),
            secret_sections=tuple(
                section
                for section in (value.get("encrypted"), (value.get("wrapper") or {}).get("encrypted"))
                if isinstance(section, Mapping)
            ),
        )


NO_CONNECTION = Connection()


@dataclass(frozen=True)
class Call:
    """One validated ``POST /function`` body."""

    #: the function's name as sent (a wire name, or an alias of one)
    function: str
    #: ``type`` as sent: a group's name, or anything falsy for a flat call
    type: Any
    #: True for a DIY call; else ``connector_id`` names the integration app
    diy: bool
    connector_id: str | None
    options: Mapping[str, Any]
    connection: Connection
    bearer_token: str | None
    flow_id: Any
    #: ``_exportId`` or ``_importId``
    resource_id: Any
    #: the answer's limit, in UTF-16 code units of its JSON text
    max_response_size: int

    @classmethod
    def parse(cls, request: Mapping[str, Any], default_max_response_size: int) -> Call:
        """``request`` has passed :class:`gateway.schemas.ExtensionOptions`."""
        options = request["options"]
        token = options.get("bearerToken")
        diy = truthy(request.get("diy"))
        return cls(
            function=request["function"],
            type=request.get("type"),
            diy=diy,
            connector_id=None if diy else str(request.get("_connectorId")),
            options=options,
            connection=Connection.parse(options.get("connection")),
            bearer_token=token if isinstance(token, str) and token else None,
            flow_id=options.get("_flowId"),
            resource_id=options.get("_exportId") or options.get("_importId"),
            # The schema refused a size that is no positive number.
            max_response_size=max_response_size(request.get("maxResponseSize"), default_max_response_size)
            or default_max_response_size,
        )
