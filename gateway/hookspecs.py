"""The plugin contract: what a wrapgate connector implements.

A connector is one plugin object (usually a module) published on the
``wrapgate`` entry-point group; the entry point's name is the connector's
name, and its functions are called over the wire as ``<name>.<function>``::

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

Rules every hook shares:

* Hooks are called with keyword arguments; an implementation declares only the
  arguments it needs, by name (pluggy checks the names when the plugin loads).
* ``connection`` is the connection resource integrator.io sent, untouched.
  ``unencrypted`` and ``encrypted`` are its two sections, already validated and
  loaded by the schemas of :func:`wrapgate_connection_schemas` when the
  connector declares them (plain dicts otherwise, ``{}`` when absent).
* ``context`` is a :class:`gateway.calls.CallContext`: request id, wire name,
  connection id, the call's deadline and a logger whose records carry them.
* ``options`` is the whole ``options`` object, for anything not passed alone.
* Only the connector a wire name selects is called; the other connectors never
  see the call. Plugins that are not connectors may wrap every call with
  ``@hookimpl(wrapper=True)`` (metrics, audit); they must not return results.
* Raise :class:`gateway.errors.CredentialsRefused` or
  :class:`gateway.errors.ConnectionOffline` when the external system refuses or
  cannot be reached; any other exception answers 422 with the exception's
  ``code`` attribute (else its class name) and its message. Secrets of the
  connection's ``encrypted`` section (strings of 6 characters or more) are
  masked in every error structure, log line and output line; the data of a
  successful result is the plugin's and passes unchanged (``gateway.scrub``).
* Results must be JSON-serialisable; ``datetime``/``date``/``time`` become ISO
  8601 strings, ``Decimal`` a JSON number, ``UUID`` a string, ``bytes`` base64.
  Anything else answers ``invalid_extension_response``.
* Calls run in gunicorn workers that serve many calls at once (gevent): use
  blocking I/O freely (it is cooperative), keep CPU-heavy loops short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy

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

#: Kinds of wire functions; each kind is served by the hook of that name.
KINDS = ("ping", "export", "import")


# ---------------------------------------------------------------------------
# Describing a connector
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def wrapgate_functions() -> Mapping[str, str] | None:
    """Further named functions of this connector, beyond ``ping``, ``export``
    and ``import``.

    :returns: a mapping of function name to kind (``"ping"``, ``"export"`` or
        ``"import"``), e.g. ``{"exportOrders": "export"}``. ``<name>.exportOrders``
        is then served by :func:`wrapgate_export` with ``function="exportOrders"``
        and checked as an export. Names are identifiers (letters, digits, ``_``).
    """


@hookspec(firstresult=True)
def wrapgate_connection_schemas() -> Mapping[str, Any] | None:
    """marshmallow schemas of the connection's sections.

    :returns: ``{"unencrypted": Schema(), "encrypted": Schema()}`` (either may
        be left out). The core validates the sections with them before every
        call and answers 422 with one ``invalid_field`` entry per problem;
        values of ``encrypted`` are never echoed in those messages.
    """


@hookspec(firstresult=True)
def wrapgate_configuration_schema(function: str) -> Any | None:
    """marshmallow schema of the export's or import's ``configuration``.

    :param function: the function called (``"export"``, ``"exportOrders"``...).
    :returns: a Schema instance, or None for no validation. The loaded result
        is what :func:`wrapgate_export` / :func:`wrapgate_import` receive as
        ``configuration``. Asked once per function and kept: the answer may
        depend on ``function`` only.
    """


# ---------------------------------------------------------------------------
# Wrapper functions
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def wrapgate_ping(
    function: str, connection: Mapping, unencrypted: Any, encrypted: Any, options: Mapping, context: Any
) -> Mapping | None:
    """Check that the connection works: ``<name>.ping``.

    :returns: None or ``{"statusCode": 200}`` when it works.
    :raises CredentialsRefused, ConnectionOffline: the gateway answers
        ``{"statusCode": 401, "errors": [...]}`` and integrator.io takes the
        connection offline.
    """


@hookspec(firstresult=True)
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
    context: Any,
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
    context: Any,
) -> list:
    """Write a batch of records: ``<name>.import``.

    :param postMapData: the records to write (after mapping).
    :param preMapData: the same records before mapping, same length.
    :returns: a list with exactly one entry per ``postMapData`` record, in order:
        ``{"statusCode": 200, "id": str}`` on success (``"ignored": True`` when
        deliberately skipped, ``errors`` for a partial success),
        ``{"statusCode": 422, "errors": [...]}`` for a bad record,
        ``{"statusCode": 401, "errors": [...]}`` when the connection failed.
        :func:`gateway.errors.record_result` builds the failure entries.
    :raises CredentialsRefused, ConnectionOffline: every record answers 401.
    """
