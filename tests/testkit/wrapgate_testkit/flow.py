"""Plugin ``flow``: one function of every non-wrapper kind, each answering
(in a well-formed answer of its kind) the arguments it was given by name, so
that the tests can see the core passes each hook the fields its hookspec names."""

from gateway import hookimpl


def _seen(arguments):
    context = arguments.pop("context")
    arguments.pop("options")
    return {**arguments, "context": {"wire": context.wire_name, "kind": context.kind}}


@hookimpl
def wrapgate_preSavePage(
    function, data, errors, _exportId, _connectionId, _flowId, _integrationId, pageIndex,
    lastExportDateTime, currentExportDateTime, settings, configuration, bearerToken, options, context,
):  # fmt: skip
    return {"data": data, "abort": False, "seen": _seen(dict(locals()))}


@hookimpl
def wrapgate_preMap(
    function, data, _importId, _connectionId, _flowId, _integrationId, settings, configuration,
    bearerToken, options, context,
):  # fmt: skip
    seen = _seen(dict(locals()))
    return [{"data": record, "seen": seen} for record in data]


@hookimpl
def wrapgate_postMap(
    function, preMapData, postMapData, _importId, _connectionId, _flowId, _integrationId, settings,
    configuration, bearerToken, options, context,
):  # fmt: skip
    seen = _seen(dict(locals()))
    return [{"data": record, "seen": seen} for record in postMapData]


@hookimpl
def wrapgate_postSubmit(
    function, preMapData, postMapData, responseData, _importId, _connectionId, _flowId,
    _integrationId, settings, configuration, bearerToken, options, context,
):  # fmt: skip
    seen = _seen(dict(locals()))
    return [dict(entry, seen=seen) for entry in responseData]


@hookimpl
def wrapgate_postResponseMap(
    function, postResponseMapData, responseData, _exportId, _importId, _connectionId, _flowId,
    _integrationId, settings, configuration, bearerToken, options, context,
):  # fmt: skip
    seen = _seen(dict(locals()))
    return [dict(record, seen=seen) for record in postResponseMapData]


@hookimpl
def wrapgate_postAggregate(
    function, postAggregateData, _importId, _connectionId, _flowId, _integrationId, settings,
    configuration, bearerToken, options, context,
):  # fmt: skip
    return _seen(dict(locals()))


@hookimpl
def wrapgate_hook(
    function, data, _integrationId, _flowId, settings, configuration, bearerToken, options, context
):
    return _seen(dict(locals()))


@hookimpl
def wrapgate_installer(function, _integrationId, _connectorId, bearerToken, options, context):
    return _seen(dict(locals()))


@hookimpl
def wrapgate_uninstaller(function, _integrationId, _connectorId, bearerToken, options, context):
    return _seen(dict(locals()))


@hookimpl
def wrapgate_setting(
    function, pending, settings, _integrationId, _connectorId, bearerToken, options, context
):
    return _seen(dict(locals()))


@hookimpl
def wrapgate_utility(function, _integrationId, _connectorId, bearerToken, options, context):
    return _seen(dict(locals()))
