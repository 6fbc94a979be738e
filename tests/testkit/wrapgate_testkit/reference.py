"""Plugin ``ref``: every kind of function, for the conformance tests.

It behaves as ``tests/peer/reference.js`` does for the reference stand-in, so
that the same request sent to both must get the same answer. The functions
named like those of the reference's own test suites do what those do (echo the
options with ``function`` set, fail with a given code...); the others probe
one rule each (answers of every JSON type, error shapes, each hook kind).
"""

from gateway import hookimpl

FUNCTIONS = {
    # installer, uninstaller, settings and utilities of an integration app
    "connectorInstallerFunction": "installer",
    "runInstallerErrorStep": "installer",
    "runInstallerSuccessStep": "installer",
    "connectorUninstallerFunction": "uninstaller",
    "runUninstallerErrorStep": "uninstaller",
    "runUninstallerSuccessStep": "uninstaller",
    "persistSettings": "setting",
    "refreshMetadata": "setting",
    "myUtility": "utility",
    # hooks whose answer is free-form
    "doSomething": "hook",
    "doSomethingError": "hook",
    "stringifyDateObject": "hook",
    "echoResponse": "hook",
    "respondWithNonSearializableObject": "hook",
    "fail": "hook",
    # hooks of a known kind (their answers are checked)
    "savePage": "preSavePage",
    "mapBefore": "preMap",
    "mapAfter": "postMap",
    "afterSubmit": "postSubmit",
    "afterResponseMap": "postResponseMap",
    "afterAggregate": "postAggregate",
    # wrappers
    "pingError": "ping",
    "importOptions": "import",
}


class Error(Exception):
    """What JavaScript's ``new Error(message)`` is: code ``Error``."""


class Named(Exception):
    """An error whose ``name`` is set, as ``error.name = 'my_error'`` in JavaScript."""

    def __init__(self, message, name):
        super().__init__(message)
        self.name = name


class Plain(Exception):
    """A plain ``{code, message}`` object passed as the error."""

    def __init__(self, code, message):
        super().__init__()
        self.code, self.message = code, message


@hookimpl
def wrapgate_functions():
    return FUNCTIONS


def _echo(options, function):
    return {**options, "function": function}


def _given(options, default):
    return options["resp"] if "resp" in options else default


@hookimpl
def wrapgate_installer(function, options):
    if function == "runInstallerErrorStep":
        raise Error("runInstallerErrorStep")
    return _echo(options, function)


@hookimpl
def wrapgate_uninstaller(function, options):
    if function == "runUninstallerErrorStep":
        raise Error("runUninstallerErrorStep")
    return _echo(options, function)


@hookimpl
def wrapgate_setting(function, options):
    if options.get("error"):
        raise Error("persistSettings")
    return _echo(options, function)


@hookimpl
def wrapgate_utility(function, options):
    if options.get("error"):
        raise Error("myUtility error")
    return _echo(options, function)


@hookimpl
def wrapgate_hook(function, options):
    if function == "doSomethingError":
        raise Named("doSomethingError", "my_error")
    if function in ("doSomething", "stringifyDateObject"):
        return [_echo(options, "doSomething") if function == "doSomething" else dict(options)]
    if function == "echoResponse":
        return options.get("resp")
    if function == "respondWithNonSearializableObject":
        return {"a": "b", "date": object()}
    how = options.get("error")
    if how == "coded":
        raise Plain("quota_exceeded", "daily quota used up")
    if how == "named":
        raise Named("named failure", "named_error")
    if how == "type":
        raise TypeError("bad type")
    if how == "empty":
        raise Error()
    if how == "secret":
        raise Error(f"token {options.get('bearerToken')} was refused")
    raise Plain("no_error_asked", "fail needs options.error")


@hookimpl
def wrapgate_preSavePage(data, errors, options):
    return _given(options, {"data": data, "errors": errors or [], "abort": False})


@hookimpl
def wrapgate_preMap(data, options):
    return _given(options, [{"data": record} for record in data])


@hookimpl
def wrapgate_postMap(postMapData, options):
    return _given(options, [{"data": record} for record in postMapData])


@hookimpl
def wrapgate_postSubmit(responseData, options):
    return _given(options, responseData)


@hookimpl
def wrapgate_postResponseMap(postResponseMapData, options):
    return _given(options, postResponseMapData)


@hookimpl
def wrapgate_postAggregate(postAggregateData, options):
    return _given(options, {"received": postAggregateData})


@hookimpl
def wrapgate_ping():
    raise Named("pingMessage", "pingCode")


@hookimpl
def wrapgate_import(options):
    # Passes the options back in the id, as the reference's own test does.
    return [{"statusCode": 200, "id": options}]
