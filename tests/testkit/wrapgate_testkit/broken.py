"""Connector ``broken``: its driver is missing, as after a bad upgrade."""

import wrapgate_missing_driver  # noqa: F401
