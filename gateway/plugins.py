"""Finding, loading and addressing connector plugins.

Each entry point of the ``wrapgate`` group loads on its own: one that fails
to import or to register is recorded with its reason (and logged loudly) while
the rest keep serving; ``strict`` turns any failure into a refusal to start.
A plugin that implements a call hook (``wrapgate_<kind>`` for any of
:data:`gateway.hookspecs.KINDS`: ping, export, import, preMap, installer...)
or ``wrapgate_functions`` is a *connector*, named by its entry point, whether
or not it talks to an external system; other plugins are extensions that may
only wrap calls.

Each connector gets its own hook callers from which every other connector is
removed (:meth:`pluggy.PluginManager.subset_hook_caller`), so a call reaches
exactly the connector its wire name selects, plus any wrapping extensions.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import secrets
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import contract, hookspecs, isolation
from .errors import ConfigurationError

log = logging.getLogger("gateway.plugins")

CALL_HOOKS = {kind: f"wrapgate_{kind}" for kind in hookspecs.KINDS}
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Connector:
    """One connector as the core sees it."""

    name: str
    plugin: Any = None
    package: str | None = None
    version: str | None = None
    #: function name -> kind (one of hookspecs.KINDS: "ping", "preMap", "installer"...)
    functions: dict[str, str] = field(default_factory=dict)
    #: kind -> hook caller that reaches this connector only
    callers: dict[str, Any] = field(default_factory=dict)
    schemas: Mapping[str, Any] = field(default_factory=dict)
    #: why the connector could not be loaded; None when it serves
    error: str | None = None
    #: the caller's share of ``error``: a short reason and the log line's reference
    #: (the detail can hold paths and whatever the plugin read from its environment)
    unavailable: str | None = None
    _configuration_schemas: dict[str, Any] = field(default_factory=dict, repr=False)

    def configuration_schema(self, function: str) -> Any:
        # Asked once per function: the hook's answer depends on the function alone,
        # and a marshmallow Schema is costly to build on every call.
        if function not in self._configuration_schemas:
            caller = self.callers.get("configuration")
            self._configuration_schemas[function] = caller(function=function) if caller else None
        return self._configuration_schemas[function]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "functions": [f"{self.name}.{fn}" for fn in sorted(self.functions)],
            "loaded": self.error is None,
            "error": self.error,
        }


class Registry:
    """The plugin manager of one app and the connectors it serves."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.connectors: dict[str, Connector] = {}
        self.extensions: list[str] = []

    # -- loading ---------------------------------------------------------

    def load_entry_points(self, allow: Iterable[str] | None = None, strict: bool = False) -> None:
        """Load every entry point of the group (or the allowed ones), each alone."""
        allowed = set(allow) if allow is not None else None
        seen = set()
        for ep in sorted(importlib.metadata.entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
            if allowed is not None and ep.name not in allowed:
                continue
            if ep.name in seen:
                # Two distributions claim the same name: serving either would surprise someone.
                self._fail(
                    ep.name,
                    f"entry point {ep.name!r} is installed twice (also by {_dist_name(ep)}); uninstall one",
                    dist=ep.dist,
                )
                continue
            seen.add(ep.name)
            try:
                plugin = isolation.load(ep)
            except isolation.ImportFailed as problem:
                # The traceback points at the import that broke, inside the plugin.
                exc = problem.cause or problem
                self._fail(ep.name, f"import of {ep.value!r} failed: {_reason(exc)}", dist=ep.dist, exc=exc)
                continue
            self.register(plugin, ep.name, dist=ep.dist)
        if allowed is not None:
            for name in sorted(allowed - seen):
                self._fail(
                    name,
                    f"WRAPGATE_PLUGINS names {name!r}, but no installed "
                    f"distribution provides a '{hookspecs.PROJECT}' entry point of that name",
                )
        failed = [c for c in self.connectors.values() if c.error]
        if strict and failed:
            raise ConfigurationError(
                "plugins failed to load (strict mode): " + "; ".join(f"{c.name}: {c.error}" for c in failed)
            )

    def register(self, plugin: Any, name: str, dist: Any = None) -> Connector | None:
        """Register one plugin object under ``name`` (tests and embedding call this too)."""
        problem = contract.incompatibility(plugin, dist)
        if problem:
            self._fail(name, problem, dist=dist)
            return None
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - pluggy validation, duplicate names
            self._fail(name, f"registration failed: {_reason(exc)}", dist=dist)
            return None
        try:
            self.pm.check_pending()  # a hookimpl with no spec is a typo: refuse the plugin
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            self._fail(name, f"registration failed: {_reason(exc)}", dist=dist)
            return None
        kinds = [k for k, hook in CALL_HOOKS.items() if self._implements(plugin, hook)]
        extras = self._implements(plugin, "wrapgate_functions")
        if not kinds and not extras:
            self.extensions.append(name)
            self._rebuild_callers()
            return None
        connector = Connector(
            name=name,
            plugin=plugin,
            package=_dist_name(dist) if dist else None,
            version=dist.version if dist else None,
        )
        try:
            connector.functions = {kind: kind for kind in kinds}
            connector.functions.update(self._extra_functions(plugin, name, kinds))
            schemas = self.pm.subset_hook_caller("wrapgate_connection_schemas", self._others(plugin))()
            connector.schemas = dict(schemas or {})
        except Exception as exc:  # noqa: BLE001
            self.pm.unregister(plugin)
            self._fail(name, f"describing the connector failed: {_reason(exc)}", dist=dist, exc=exc)
            return None
        self.connectors[name] = connector
        self._rebuild_callers()
        log.info("connector %s loaded: %s", name, ", ".join(sorted(connector.functions)))
        return connector

    def _extra_functions(self, plugin: Any, name: str, kinds: list[str]) -> dict[str, str]:
        if not self._implements(plugin, "wrapgate_functions"):
            return {}
        declared = self.pm.subset_hook_caller("wrapgate_functions", self._others(plugin))() or {}
        extra = {}
        for fn, kind in dict(declared).items():
            if not isinstance(fn, str) or not _FUNCTION_NAME.match(fn):
                raise ValueError(f"function name {fn!r} is not an identifier")
            if kind not in hookspecs.KINDS:
                raise ValueError(f"function {fn!r} has kind {kind!r}; kinds are {', '.join(hookspecs.KINDS)}")
            if kind not in kinds:
                raise ValueError(f"function {fn!r} is a {kind} but the plugin has no {CALL_HOOKS[kind]}")
            extra[fn] = kind
        return extra

    def _fail(self, name: str, reason: str, dist: Any = None, exc: BaseException | None = None) -> None:
        reference = secrets.token_hex(4)
        log.error(
            "connector %s is unavailable (reference %s): %s",
            name,
            reference,
            reason,
            exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
        )
        self.connectors[name] = Connector(
            name=name,
            package=_dist_name(dist) if dist else None,
            version=getattr(dist, "version", None),
            error=reason,
            # Every reason above reads "<what failed>: <detail>".
            unavailable=f"{reason.partition(': ')[0]}; the gateway's log has the detail (reference {reference})",
        )
        return None

    def _implements(self, plugin: Any, hook: str) -> bool:
        return any(
            impl.plugin is plugin and not (impl.hookwrapper or impl.wrapper)
            for impl in getattr(self.pm.hook, hook).get_hookimpls()
        )

    def _others(self, plugin: Any) -> list[Any]:
        return [c.plugin for c in self.connectors.values() if c.plugin is not None and c.plugin is not plugin]

    def _rebuild_callers(self) -> None:
        for connector in self.connectors.values():
            if connector.plugin is None:
                continue
            others = self._others(connector.plugin)
            connector.callers = {
                kind: self.pm.subset_hook_caller(hook, others) for kind, hook in CALL_HOOKS.items()
            }
            connector.callers["configuration"] = self.pm.subset_hook_caller(
                "wrapgate_configuration_schema", others
            )

    # -- observing -------------------------------------------------------

    def notify(self, hook: str, **arguments: Any) -> None:
        """Tell every implementation of the observing hook ``hook`` (``wrapgate_call_done``,
        ``wrapgate_slot_running``...), each with the arguments it asks for.

        Each implementation is called on its own and this never raises: pluggy's own
        call would stop at the first implementation that raises, and what an observer
        does wrong must change neither the answer nor what the other observers see.
        A failure is logged with the plugin's name.
        """
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                impl.function(*(arguments[name] for name in impl.argnames))
            except Exception:
                log.exception("plugin %s failed in %s", impl.plugin_name, hook)

    # -- addressing ------------------------------------------------------

    def arguments(self, kind: str) -> tuple[str, ...]:
        """The argument names of ``kind``'s hookspec: what its hook may ask for."""
        return tuple(getattr(self.pm.hook, CALL_HOOKS[kind]).spec.argnames)

    def describe(self) -> list[dict[str, Any]]:
        return [self.connectors[n].describe() for n in sorted(self.connectors)]


def _dist_name(dist: Any) -> str | None:
    if dist is None:
        return None
    try:
        return dist.metadata["Name"]
    except Exception:  # noqa: BLE001 - broken metadata must not stop loading
        return getattr(dist, "name", None)


def _reason(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return " / ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__
