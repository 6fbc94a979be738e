"""Connector ``oldpin``: its distribution requires a wrapgate older than this one."""

from gateway import hookimpl


@hookimpl
def wrapgate_ping():
    raise AssertionError("a plugin whose distribution pins another wrapgate must never be called")
