"""Options of rest calls against the test API, and paging through an export."""

import requests
from api import TOKEN

from gateway.testing import GatewayProcess, export_pages


def conn(api, auth=None, secrets=None, **extra):
    """A connection to the test API; ``extra`` goes to ``unencrypted`` except
    ``concurrencyLevel``, a field of the connection resource itself."""
    level = extra.pop("concurrencyLevel", None)
    unencrypted = {
        "baseURI": api.url,
        "pingPath": "/me",
        "auth": auth or {"type": "bearer"},
        "retries": 2,
        "backoff": 0.01,
        **extra,
    }
    connection = {"_id": "rest-1", "unencrypted": unencrypted, "encrypted": secrets or {"token": TOKEN}}
    if level is not None:
        connection["concurrencyLevel"] = level
    return connection


def export_all(call, options):
    return export_pages(call, "rest.export", options)


def import_records(call, api, records, configuration, **connection):
    """(status, answer) of ``rest.import`` of ``records`` over a test-API connection."""
    options = {"connection": conn(api, **connection), "postMapData": records, "configuration": configuration}
    return call("rest.import", options)


class Gunicorn(GatewayProcess):
    """:class:`gateway.testing.GatewayProcess` whose readiness probe waits for a
    worker that is still booting: the core's probe gives up on the first read
    timeout, which a loaded machine produces while workers import plugins."""

    def _up(self) -> bool:
        try:
            return super()._up()
        except requests.Timeout:
            return False
