"""Meta-tests that keep the plugin contract honest: every hook documented, every hook used."""

import inspect
import types
import typing
from pathlib import Path

import pluggy
import pytest

from gateway import hookimpl, hookspecs
from gateway.calls import CallContext
from gateway.testing import InProcessGateway

HOOKS = [name for name, fn in vars(hookspecs).items() if name.startswith("wrapgate_") and callable(fn)]
TESTKIT = Path(__file__).parent / "testkit" / "wrapgate_testkit"


def test_there_are_hooks():
    assert {"wrapgate_ping", "wrapgate_export", "wrapgate_import"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_a_spec_with_a_contract_docstring(name):
    fn = getattr(hookspecs, name)
    assert getattr(fn, "wrapgate_spec", None) is not None, f"{name} is not a hookspec"
    doc = inspect.getdoc(fn) or ""
    assert ":returns:" in doc, f"{name}: the docstring must say what it returns"


@pytest.mark.parametrize("name", HOOKS)
def test_every_argument_of_every_hook_is_documented(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    for argument in inspect.signature(fn).parameters:
        assert f":param {argument}:" in doc, f"{name}: argument {argument} has no :param:"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_typed(name):
    hints = typing.get_type_hints(getattr(hookspecs, name), localns={"CallContext": CallContext})
    assert set(inspect.signature(getattr(hookspecs, name)).parameters) | {"return"} == set(hints)
    if "context" in hints:
        assert hints["context"] is CallContext


def test_every_wrapper_hook_documents_what_it_raises():
    for name in ("wrapgate_ping", "wrapgate_export", "wrapgate_import"):
        assert ":raises" in inspect.getdoc(getattr(hookspecs, name))


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_implemented_by_a_test_plugin(name):
    source = "".join(p.read_text() for p in TESTKIT.glob("*.py"))
    assert f"def {name}(" in source, f"no test plugin implements {name}"


DESCRIBING = {"wrapgate_functions", "wrapgate_connection_schemas", "wrapgate_configuration_schema"}
#: the hooks every plugin that implements them sees: calls answered, slots taken and given back
OBSERVING = sorted(set(HOOKS) - DESCRIBING - {f"wrapgate_{kind}" for kind in hookspecs.KINDS})


def test_every_kind_has_its_hook_and_group():
    served = set(HOOKS) - DESCRIBING - set(OBSERVING)
    assert set(hookspecs.KINDS) == {name.removeprefix("wrapgate_") for name in served}
    assert OBSERVING == [
        "wrapgate_call_done",
        "wrapgate_slot_rejected",
        "wrapgate_slot_running",
        "wrapgate_slot_waiting",
    ]
    assert set(hookspecs.KIND_GROUP) == set(hookspecs.KINDS)


@pytest.mark.parametrize("name", OBSERVING)
def test_every_observing_hook_is_reached_with_every_argument_of_its_spec(name):
    """A plugin asking for every argument of an observing hook gets each, of its
    spec's type, for a call that runs and one refused for want of a slot."""
    from gateway.parsed import Connection
    from wrapgate_testkit import kit

    spec = getattr(hookspecs, name)
    names = list(inspect.signature(spec).parameters)
    hints = typing.get_type_hints(spec, localns={"CallContext": CallContext})
    received = []

    def implementation(*args):
        received.append(dict(zip(names, args, strict=True)))

    implementation.__wrapped__ = spec
    plugin = types.ModuleType("watcher")
    setattr(plugin, name, hookimpl(implementation))
    gateway = InProcessGateway({"kit": kit, "watcher": plugin}, limiter="local", limit_wait=0)
    connection = {"_id": "conn-seen", "concurrencyLevel": 1, "unencrypted": {}}
    assert gateway.call("kit.ping", {"connection": connection})[0] == 200
    with gateway.gateway.limit(Connection.parse(connection)):  # holds the connection's only slot
        assert gateway.call("kit.ping", {"connection": connection})[0] == 429
    assert received, f"{name} was never called"
    for arguments in received:
        assert set(arguments) == set(names)
        for argument, value in arguments.items():
            assert isinstance(value, hints[argument]), (argument, value)
            if argument == "connection_id":
                assert value == "conn-seen"


# One valid call of each kind: the options it is sent and an answer its checks accept.
RECORDS = [{"id": 1}]
CALLS = {
    "ping": ({}, None),
    "export": ({}, {"data": [], "lastPage": True}),
    "import": ({"postMapData": RECORDS}, [{"statusCode": 200}]),
    "preSavePage": ({"data": RECORDS}, {"data": []}),
    "preMap": ({"data": RECORDS}, [{}]),
    "postMap": ({"postMapData": RECORDS}, [{}]),
    "postSubmit": ({"responseData": RECORDS}, [{}]),
    "postResponseMap": ({"postResponseMapData": RECORDS}, [{}]),
    "postAggregate": ({}, None),
    "hook": ({}, None),
    "installer": ({}, None),
    "uninstaller": ({}, None),
    "setting": ({}, None),
    "utility": ({}, None),
}


@pytest.mark.parametrize("kind", hookspecs.KINDS)
def test_every_call_hook_is_reached_with_every_argument_of_its_spec(kind):
    """A plugin asking for every argument of the hookspec gets each of them: the
    fields of ``options`` by name, and the core's own (function, options, context)."""
    spec = getattr(hookspecs, f"wrapgate_{kind}")
    names = list(inspect.signature(spec).parameters)
    extra, answer = CALLS[kind]
    received = {}

    def implementation(*args):
        received.update(zip(names, args, strict=True))
        return answer

    # pluggy reads the arguments an implementation asks for from its code,
    # following __wrapped__: this one asks for every argument of the spec.
    implementation.__wrapped__ = spec
    plugin = types.ModuleType("everything")
    setattr(plugin, spec.__name__, hookimpl(implementation))
    options = {name: f"{name} value" for name in names if name not in CORE}
    options.update(extra)
    gateway = InProcessGateway({"everything": plugin})
    status, body = gateway.call(f"everything.{kind}", options, type=TYPE_OF[hookspecs.KIND_GROUP[kind]])
    assert status == 200, body
    assert set(received) == set(names)
    assert received["function"] == kind and received["options"] == options
    assert received["context"].kind == kind and received["context"].wire_name == f"everything.{kind}"
    for name in set(names) - CORE - {"connection", "unencrypted", "encrypted"}:
        assert received[name] == options[name], name


CORE = {"function", "options", "context"}
TYPE_OF = {"wrappers": "wrapper", "hooks": "hook", "settings": "setting", "utilities": "utility"} | {
    "installer": "installer",
    "uninstaller": "uninstaller",
}


def test_hookimpl_marker_is_the_projects():
    assert isinstance(hookimpl, pluggy.HookimplMarker) and hookimpl.project_name == "wrapgate"


def test_every_environment_variable_is_documented():
    import re

    root = Path(__file__).parent.parent
    sources = [*root.glob("gateway/**/*.py"), root / "Dockerfile", root / "docker-compose.yml"]
    used = set()
    for path in sources:
        used |= set(re.findall(r"WRAPGATE_[A-Z_]+", path.read_text()))
    readme = (root / "README.md").read_text()
    missing = sorted(name for name in used if f"`{name}`" not in readme)
    assert not missing, f"undocumented in README.md: {missing}"
