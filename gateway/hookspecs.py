# Hookspecs have no body: their docstring is the contract, pluggy calls the plugins.
# mypy: disable-error-code="empty-body"
"""The plugin contract: what a wrapgate plugin implements.

A plugin is one object (usually a module) published on the ``wrapgate``
entry-point group; the entry point's name is the plugin's name, and its
functions are called over the wire as ``<name>.<function>``::

    # setup.cfg
    [options.entry_points]
    wrapgate =
        acme = wrapgate_acme.connector

    # wrapgate_acme/connector.py
    from gateway import hookimpl
    from gateway.errors import CredentialsRefused

    @hookimpl
    def wrapgate_ping(unencrypted, encrypted):
        if not acme_client(unencrypted, encrypted).authenticate():
            raise CredentialsRefused("Acme refused the API key.")

    @hookimpl
    def wrapgate_export(configuration, state):
        page = acme_client().list(cursor=state)
        return {"data": page.items, "lastPage": page.next is None, "state": page.next}

integrator.io sends a Server stack six kinds of function, told apart by the
call's ``type``; each *kind* of wire function is served by the hook of that
name, and each kind belongs to one group (:data:`GROUPS`):

============  =====================================  ==========================
``type``      kinds (hooks ``wrapgate_<kind>``)      what calls it
============  =====================================  ==========================
wrapper       ping, export, import                   a wrapper connection
hook          preSavePage, preMap, postMap,          a flow's hooks
              postSubmit, postResponseMap,
              postAggregate, hook (any other)
installer     installer                              an integration app's install steps
uninstaller   uninstaller                            its uninstall steps
setting       setting                                its settings (persistSettings...)
utility       utility                                its utilities
(absent)      every kind                             "flat" calls by function name
============  =====================================  ==========================

A plugin that implements ``wrapgate_<kind>`` serves ``<name>.<kind>``;
:func:`wrapgate_functions` names further functions of any kind
(``{"dropInactive": "preSavePage", "runStep": "installer"}``). One plugin may
serve any mix of kinds; a plugin of hooks alone needs no external system.

Rules every hook shares:

* Hooks are called with keyword arguments; an implementation declares only the
  arguments it needs, by name (pluggy checks the names when the plugin loads).
  Arguments named like a field of ``options`` (``data``, ``_exportId``,
  ``bearerToken``...) are that field as integrator.io sent it, None when absent.
* ``options`` is the whole ``options`` object, for anything not passed alone.
* ``context`` is a :class:`gateway.calls.CallContext`: request id, wire name,
  connection id, the call's deadline and a logger whose records carry them; the
  connection's concurrency ``level`` and ``permit()``, which a plugin holds for
  each request it sends to the external system so that the requests of all
  the connection's calls, on every worker and host, stay within the level.
* Only the plugin a wire name selects is called; the other plugins never see
  the call. Plugins that serve no function may wrap every call with
  ``@hookimpl(wrapper=True)`` (metrics, audit): such a wrapper must return the
  result it received (``return (yield)``), or re-raise what it caught. To
  observe every call without touching it, implement :func:`wrapgate_call_done`.
* A wrapper raises :class:`gateway.errors.CredentialsRefused` or
  :class:`gateway.errors.ConnectionOffline` when the external system refuses or
  cannot be reached. Any other exception answers 422
  ``{"errors": [{"code", "message"}]}`` with the exception's ``code`` attribute
  (else its ``name`` attribute, else its class name) and its ``message``
  attribute (else its text), as the reference stack shapes a function's error.
  Secrets of the call (the connection's ``encrypted`` section, ``bearerToken``;
  strings of 6 characters or more) are masked in every error structure, log
  line and output line; the data of a successful result is the plugin's and
  passes unchanged (``gateway.scrub``).
* Results must be JSON-serialisable; ``datetime``/``date``/``time`` become ISO
  8601 strings, ``Decimal`` a JSON number, ``UUID`` a string, ``bytes`` base64.
  Anything else answers ``invalid_extension_response``. A result that would make
  integrator.io misread the call (an import with fewer entries than records, a
  preMap answer of another length than ``data``...) answers the same code, with
  a message naming the function and the problem.
* Calls run in gunicorn workers that serve many calls at once (gevent): use
  blocking I/O freely (it is cooperative), keep CPU-heavy loops short.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:  # for the annotations only: this module imports nothing of the core
    from .calls import CallContext

PROJECT = "wrapgate"

#: The version of this contract (the hooks below, their arguments and results, the
#: error types of :mod:`gateway.errors`). It changes only when a plugin written for the
#: previous version could break; a plugin module may say which version it was written
#: against with a module attribute ``WRAPGATE_CONTRACT = 1``, and the core refuses to
#: load it (reported by name, the other plugins serve) when that is not a version it
#: serves. See :mod:`gateway.contract` and the CHANGELOG for the policy.
CONTRACT_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: group (integrator.io's name of the module's object) -> the kinds served in it
GROUPS: dict[str, tuple[str, ...]] = {
    "wrappers": ("ping", "export", "import"),
    "hooks": ("preSavePage", "preMap", "postMap", "postSubmit", "postResponseMap", "postAggregate", "hook"),
    "installer": ("installer",),
    "uninstaller": ("uninstaller",),
    "settings": ("setting",),
    "utilities": ("utility",),
}
#: every kind of wire function; each is served by the hook ``wrapgate_<kind>``
KINDS = tuple(kind for kinds in GROUPS.values() for kind in kinds)
#: kind -> its group
KIND_GROUP = {kind: group for group, kinds in GROUPS.items() for kind in kinds}

# The arguments many hooks share, documented once: :func:`_contract` adds the
# ``:param:`` line of each to every hook that takes it and does not say more.
SHARED = {
    "function": "the function's name after the plugin's (``exportOrders`` for ``acme.exportOrders``).",
    "options": "the call's whole ``options`` object, as sent.",
    "context": "the call's :class:`~gateway.calls.CallContext` (ids, deadline, logger, the "
    "connection's level and its request permits).",
    "connection": "the connection resource integrator.io sent, untouched (``{}`` when absent).",
    "unencrypted": "the connection's ``unencrypted`` section (top level or under ``wrapper``), "
    "loaded by the ``unencrypted`` schema of :func:`wrapgate_connection_schemas` when declared, "
    "else a plain dict (``{}`` when absent).",
    "encrypted": "the connection's ``encrypted`` section (its secrets), loaded like ``unencrypted``.",
    "configuration": "the export's/import's own settings (``options.configuration``), loaded by "
    ":func:`wrapgate_configuration_schema` when the plugin declares one for wrappers.",
    "settings": "the integration's (or flow's) settings object.",
    "bearerToken": "a one-time token for calling integrator.io's API back; a secret.",
    "_integrationId": "id of the integration the call belongs to.",
    "_flowId": "id of the flow.",
    "_exportId": "id of the export the hook runs for.",
    "_importId": "id of the import the hook runs for.",
    "_connectionId": "id of the export's/import's connection.",
    "_connectorId": "id of the integration app (None for DIY).",
    "data": "the page's records (an array).",
    "preMapData": "the records before mapping (an array, same length as ``postMapData``).",
    "postMapData": "the records after mapping (an array).",
    "responseData": "one entry per submitted record: ``{statusCode, id, errors, ignored, _json, dataURI}``.",
}

_Hook = TypeVar("_Hook", bound=Callable[..., Any])


def _contract(fn: _Hook) -> _Hook:
    """Complete ``fn``'s docstring with the ``:param:`` of its shared arguments;
    refuses (at import) a hook with an argument documented nowhere."""
    doc = inspect.cleandoc(fn.__doc__ or "")
    lines = []
    for name in inspect.signature(fn).parameters:
        if f":param {name}:" in doc:
            continue
        if name not in SHARED:
            raise TypeError(f"{fn.__name__}: argument {name!r} is not documented")
        lines.append(f":param {name}: {SHARED[name]}")
    if lines:
        head, sep, tail = doc.partition("\n:returns:")
        fn.__doc__ = head.rstrip() + "\n\n" + "\n".join(lines) + (sep + tail if sep else "")
    return fn


# ---------------------------------------------------------------------------
# Describing a plugin
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def wrapgate_functions() -> Mapping[str, str] | None:
    """Further named functions of this plugin, beyond the one of each kind it
    implements (``<name>.ping``, ``<name>.preMap``...).

    :returns: a mapping of function name to kind (one of :data:`KINDS`), e.g.
        ``{"exportOrders": "export", "dropInactive": "preSavePage"}``.
        ``<name>.exportOrders`` is then served by :func:`wrapgate_export` with
        ``function="exportOrders"`` and checked as an export. Names are
        identifiers (letters, digits, ``_``); the plugin must implement the
        kind's hook.
    """


@hookspec(firstresult=True)
def wrapgate_connection_schemas() -> Mapping[str, Any] | None:
    """marshmallow schemas of the connection's sections (wrapper functions).

    :returns: ``{"unencrypted": Schema(), "encrypted": Schema()}`` (either may
        be left out). The core validates the sections with them before every
        wrapper call and answers 422 with one ``invalid_field`` entry per
        problem; values of ``encrypted`` are never echoed in those messages.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_configuration_schema(function: str) -> Any | None:
    """marshmallow schema of the export's or import's ``configuration``.

    :param function: the function called (``"export"``, ``"exportOrders"``...).
    :returns: a Schema instance, or None for no validation. The loaded result
        is what :func:`wrapgate_export` / :func:`wrapgate_import` receive as
        ``configuration``. Asked once per function and kept: the answer may
        depend on ``function`` only.
    """


# ---------------------------------------------------------------------------
# Observing calls and the connections' slots (every plugin that implements
# these sees every call; the core's own metrics are a plugin of them)
# ---------------------------------------------------------------------------


@hookspec
@_contract
def wrapgate_call_done(
    context: CallContext, outcome: str, seconds: float, status: int, response_bytes: int
) -> None:
    """After every call, answered or failed: metrics, audit. The core's own
    Prometheus metrics are a plugin of this hook.

    :param context: the call's context; when the call failed before its function
        was found (a bad request), only ``request_id`` and ``trace_id`` are set.
    :param outcome: ``"ok"``, or the code of the error the call was answered with.
    :param seconds: how long the call took, from its body to its answer.
    :param status: the HTTP status of the answer.
    :param response_bytes: the length of the answer's body.
    :returns: nothing. Each implementation is called on its own: the answer is
        made already, and an exception raised by one is logged and changes
        nothing for the caller nor for the other implementations.
    """


@hookspec
@_contract
def wrapgate_slot_waiting(connection_id: str, delta: int) -> None:
    """A call of a connection starts (``delta=1``) or stops (``delta=-1``)
    waiting for one of the connection's slots (its concurrency level, see
    :mod:`gateway.limits`). The core's gauge ``wrapgate_connection_waiting`` is
    a plugin of this hook. A call granted a slot at once never waited and is not
    reported: the in-process and Redis limiters know at once, the host's arbiter
    when no grant came back within 5 ms (a round trip takes well under one).

    :param connection_id: the connection's ``_id``, as text.
    :param delta: ``1`` when a call starts waiting, ``-1`` when it got a slot or gave up.
    :returns: nothing. Called in the worker that serves the call, on the thread
        that waits; each implementation on its own, an exception logged and ignored.
    """


@hookspec
@_contract
def wrapgate_slot_running(connection_id: str, delta: int) -> None:
    """A call of a connection got a slot and runs (``delta=1``), or ended and
    gave it back (``delta=-1``; for a call answered 504 while its function still
    runs, when the function ends). The core's gauge
    ``wrapgate_connection_in_flight`` is a plugin of this hook.

    :param connection_id: the connection's ``_id``, as text.
    :param delta: ``1`` when the call takes its slot, ``-1`` when it gives it back.
    :returns: nothing; each implementation is called on its own, an exception
        logged and ignored.
    """


@hookspec
@_contract
def wrapgate_slot_rejected(connection_id: str) -> None:
    """A call of a connection got no slot within ``limit_wait`` seconds and is
    answered 429 ``concurrency_limit_exceeded``. The core's counter
    ``wrapgate_concurrency_rejections`` is a plugin of this hook.

    :param connection_id: the connection's ``_id``, as text.
    :returns: nothing; each implementation is called on its own, an exception
        logged and ignored.
    """


# ---------------------------------------------------------------------------
# Wrapper functions (type "wrapper"): a wrapper connection's ping, export, import
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
@_contract
def wrapgate_ping(
    function: str,
    connection: Mapping,
    unencrypted: Any,
    encrypted: Any,
    options: Mapping,
    context: CallContext,
) -> Mapping | None:
    """Check that the connection works: ``<name>.ping``.

    :returns: None or ``{"statusCode": 200}`` when it works.
    :raises CredentialsRefused, ConnectionOffline: the gateway answers
        ``{"statusCode": 401, "errors": [...]}`` and integrator.io takes the
        connection offline.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_export(
    function: str,
    connection: Mapping,
    unencrypted: Any,
    encrypted: Any,
    configuration: Any,
    type: str | None,
    delta: Mapping | None,
    once: Mapping | None,
    test: Mapping | None,
    state: Any,
    data: list | None,
    settings: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Mapping:
    """Return one page of records: ``<name>.export``.

    :param type: ``"delta"``, ``"once"``, ``"test"`` or None (all records).
    :param delta: ``{"dateField", "lastExecutionTime"}`` (ms since the epoch) for delta.
    :param once: ``{"booleanField"}`` for once.
    :param test: ``{"limit"}`` for test.
    :param state: what the previous page returned as ``state`` (None first).
    :param data: input records when the export runs as a page processor.
    :returns: ``{"data": [records], "lastPage": bool, "state": any}``; ``errors``
        (a list of ``{"code", "message"}``) may be added. integrator.io calls
        again with ``state`` until ``lastPage`` is true, and stops an export that
        answers the same page more than five times.
    :raises CredentialsRefused, ConnectionOffline: the page answers
        ``connectionOffline: true`` and integrator.io takes the connection offline.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_import(
    function: str,
    connection: Mapping,
    unencrypted: Any,
    encrypted: Any,
    configuration: Any,
    preMapData: list | None,
    postMapData: list,
    settings: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> list:
    """Write a batch of records: ``<name>.import``.

    :param postMapData: the records to write (after mapping); the core answers
        422 before calling when it is not an array.
    :returns: a list with exactly one entry per ``postMapData`` record, in order:
        ``{"statusCode": 200, "id": str}`` on success (``"ignored": True`` when
        deliberately skipped, ``errors`` for a partial success),
        ``{"statusCode": 422, "errors": [...]}`` for a bad record,
        ``{"statusCode": 401, "errors": [...]}`` when the connection failed.
        :func:`gateway.errors.record_result` builds the failure entries.
    :raises CredentialsRefused, ConnectionOffline: every record answers 401.
    """


# ---------------------------------------------------------------------------
# Flow hooks (type "hook"). integrator.io does not say which kind of hook it
# calls: the plugin's declaration does, and the core checks the answer's shape
# for that kind. A hook's exceptions fail the whole call (422), as in the
# reference; per-record problems go into the answer's ``errors``.
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
@_contract
def wrapgate_preSavePage(
    function: str,
    data: list,
    errors: list | None,
    _exportId: str | None,
    _connectionId: str | None,
    _flowId: str | None,
    _integrationId: str | None,
    pageIndex: int | None,
    lastExportDateTime: str | None,
    currentExportDateTime: str | None,
    settings: Any,
    configuration: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Mapping:
    """Change a page of exported records before integrator.io keeps it.

    :param errors: the errors the export gave for this page.
    :param pageIndex: the page's position in the export, from 0.
    :param lastExportDateTime: start of the previous run (ISO 8601 text), for delta logic.
    :param currentExportDateTime: start of this run (ISO 8601 text).
    :returns: ``{"data": [records], "errors": [...], "abort": bool,
        "newErrorsAndRetryData": [...]}``; ``data`` is required and must be an
        array, ``errors`` an array and ``abort`` a boolean when present.
        ``abort: true`` stops the flow.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_preMap(
    function: str,
    data: list,
    _importId: str | None,
    _connectionId: str | None,
    _flowId: str | None,
    _integrationId: str | None,
    settings: Any,
    configuration: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> list:
    """Change records before the import maps them.

    :returns: exactly one entry per record of ``data``, in order:
        ``{"data": record}`` to go on (``data`` may be an array to split a
        record), ``{"errors": [...]}`` to fail that record, or both.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_postMap(
    function: str,
    preMapData: list | None,
    postMapData: list,
    _importId: str | None,
    _connectionId: str | None,
    _flowId: str | None,
    _integrationId: str | None,
    settings: Any,
    configuration: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> list:
    """Change records after mapping, before they are submitted.

    :returns: exactly one entry per record of ``postMapData``, in order:
        ``{"data": record}`` and/or ``{"errors": [...]}``.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_postSubmit(
    function: str,
    preMapData: list | None,
    postMapData: list | None,
    responseData: list,
    _importId: str | None,
    _connectionId: str | None,
    _flowId: str | None,
    _integrationId: str | None,
    settings: Any,
    configuration: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> list:
    """See (and change) what the import answered for each record.

    :returns: exactly one entry per ``responseData`` entry, in order, of the
        same shape (``statusCode``, ``id``, ``errors``, ``ignored``).
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_postResponseMap(
    function: str,
    postResponseMapData: list,
    responseData: list | None,
    _exportId: str | None,
    _importId: str | None,
    _connectionId: str | None,
    _flowId: str | None,
    _integrationId: str | None,
    settings: Any,
    configuration: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> list:
    """Change records after a lookup's or import's response was mapped onto them.

    :param postResponseMapData: the records with the response mapped in (an array).
    :returns: exactly one record (an object) per ``postResponseMapData`` record, in order.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_postAggregate(
    function: str,
    postAggregateData: Mapping | None,
    _importId: str | None,
    _connectionId: str | None,
    _flowId: str | None,
    _integrationId: str | None,
    settings: Any,
    configuration: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Any:
    """Runs once after an import that aggregates records into one file finished.

    :param postAggregateData: ``{"success", "_json", "code", "message", "source"}``
        of the aggregated submit.
    :returns: anything JSON (integrator.io ignores it); None answers ``null``.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_hook(
    function: str,
    data: Any,
    _integrationId: str | None,
    _flowId: str | None,
    settings: Any,
    configuration: Any,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Any:
    """Any other hook (type ``hook``) whose answer the core does not check.

    :returns: anything JSON, passed on as it is; None answers ``null``.
    """


# ---------------------------------------------------------------------------
# Integration apps (``_connectorId``): installer, uninstaller, settings, utilities.
# Their options are free-form; the answer is passed on as it is.
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
@_contract
def wrapgate_installer(
    function: str,
    _integrationId: str | None,
    _connectorId: str | None,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Any:
    """One step of an integration app's installer (type ``installer``).

    :returns: anything JSON (the step's outcome, as the app's installer expects).
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_uninstaller(
    function: str,
    _integrationId: str | None,
    _connectorId: str | None,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Any:
    """One step of an integration app's uninstaller (type ``uninstaller``).

    :returns: anything JSON.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_setting(
    function: str,
    pending: Mapping | None,
    settings: Any,
    _integrationId: str | None,
    _connectorId: str | None,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Any:
    """An integration app's settings function (type ``setting``: ``persistSettings``,
    ``refreshMetadata``...).

    :param pending: the settings the user is saving, field name to new value
        (``persistSettings``).
    :returns: anything JSON.
    """


@hookspec(firstresult=True)
@_contract
def wrapgate_utility(
    function: str,
    _integrationId: str | None,
    _connectorId: str | None,
    bearerToken: str | None,
    options: Mapping,
    context: CallContext,
) -> Any:
    """An integration app's utility function (type ``utility``).

    :returns: anything JSON.
    """
