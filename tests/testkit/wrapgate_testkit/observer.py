"""Extension ``observer``: wraps every export and marks the result, the way a
metrics or audit plugin would; it is not a connector."""

from gateway import hookimpl


@hookimpl(wrapper=True)
def wrapgate_export(context):
    result = yield
    if isinstance(result, dict) and context.function == "exportOrders":
        result["observed"] = True
    return result


#: (wire name, outcome, status) of every call this process answered
DONE = []


@hookimpl
def wrapgate_call_done(context, outcome, status):
    DONE.append((context.wire_name, outcome, status))


#: (hook, connection id, delta) of every slot event this process reported
SLOTS = []


@hookimpl
def wrapgate_slot_waiting(connection_id, delta):
    SLOTS.append(("waiting", connection_id, delta))


@hookimpl
def wrapgate_slot_running(connection_id, delta):
    SLOTS.append(("running", connection_id, delta))


@hookimpl
def wrapgate_slot_rejected(connection_id):
    SLOTS.append(("rejected", connection_id, None))
