"""gateway.plugins.Registry, unit by unit: what a registered plugin serves."""

import types

import pytest

from gateway import hookimpl
from gateway.plugins import Registry


def plugin(**hooks):
    module = types.ModuleType("p")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def test_each_implemented_kind_is_a_function_and_declared_names_add_more():
    def wrapgate_functions():
        return {"clean": "preSavePage", "step": "installer"}

    def wrapgate_preSavePage(data):
        return {"data": data}

    def wrapgate_installer(function):
        return function

    registry = Registry()
    connector = registry.register(
        plugin(
            wrapgate_functions=wrapgate_functions,
            wrapgate_preSavePage=wrapgate_preSavePage,
            wrapgate_installer=wrapgate_installer,
        ),
        "acme",
    )
    assert connector.functions == {
        "preSavePage": "preSavePage",
        "installer": "installer",
        "clean": "preSavePage",
        "step": "installer",
    }
    arguments = dict.fromkeys(registry.arguments("installer"))
    assert connector.callers["installer"](**dict(arguments, function="step")) == "step"


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        ({"x": "nope"}, "has kind 'nope'"),
        ({"x": "preMap"}, "has no wrapgate_preMap"),
        ({"a-b": "hook"}, "identifier"),
    ],
)
def test_bad_declarations_fail_the_plugin_alone(declared, reason):
    def wrapgate_functions():
        return declared

    def wrapgate_hook():
        return None

    registry = Registry()
    assert (
        registry.register(plugin(wrapgate_functions=wrapgate_functions, wrapgate_hook=wrapgate_hook), "bad")
        is None
    )
    assert reason in registry.connectors["bad"].error


def test_a_plugin_without_call_hooks_is_an_extension():
    def wrapgate_export(context):
        return (yield)

    registry = Registry()
    module = types.ModuleType("w")
    module.wrapgate_export = hookimpl(wrapper=True)(wrapgate_export)
    assert registry.register(module, "watcher") is None
    assert registry.extensions == ["watcher"] and "watcher" not in registry.connectors


def test_arguments_are_the_hookspecs():
    assert Registry().arguments("setting") == (
        "function", "pending", "settings", "_integrationId", "_connectorId", "bearerToken", "options", "context",
    )  # fmt: skip
