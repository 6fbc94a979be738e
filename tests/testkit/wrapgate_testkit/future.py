"""Connector ``future``: written for a plugin contract this core does not serve."""

from gateway import hookimpl

WRAPGATE_CONTRACT = 2


@hookimpl
def wrapgate_ping():
    raise AssertionError("a plugin built for another contract must never be called")
