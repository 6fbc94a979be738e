"""Connector ``other``: fails every call. A call to another connector that
reached it would fail, which is how the tests see that dispatch is exact."""

from gateway import hookimpl


@hookimpl
def wrapgate_ping():
    raise AssertionError("other.ping was called for a call that was not its own")


@hookimpl
def wrapgate_export():
    raise AssertionError("other.export was called for a call that was not its own")


@hookimpl
def wrapgate_import():
    raise AssertionError("other.import was called for a call that was not its own")
