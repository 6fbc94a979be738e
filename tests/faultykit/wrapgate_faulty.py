# No module docstring on purpose: the conformance suite must notice.
# Connector ``faulty``: what the conformance suite and `wrapgate read` must catch.
from gateway import hookimpl


@hookimpl
def wrapgate_ping(encrypted):
    return None  # accepts any credentials: a refused connection still answers 200


@hookimpl
def wrapgate_export(configuration, state):
    # The same page forever: integrator.io stops such an export after five repeats.
    return {"data": [{"id": 1}], "lastPage": False, "state": "again"}


@hookimpl
def wrapgate_import(postMapData):
    return [{"statusCode": 200, "id": str(n)} for n, _ in enumerate(postMapData[1:])]  # one short
