"""Connector ``badsig``: asks for an argument no hook provides."""

from gateway import hookimpl


@hookimpl
def wrapgate_ping(connection, no_such_argument):
    return None
