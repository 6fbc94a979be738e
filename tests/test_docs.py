"""docs/authoring.md against the code it documents: the contract reference is the
one generated from gateway/hookspecs.py, and what the page promises is true."""

import dataclasses
import inspect
import re
import types

from support import ROOT

from gateway import calls, hookimpl, hookspecs, reference
from gateway.plugins import Registry

GUIDE = ROOT / "docs" / "authoring.md"


def test_the_reference_is_generated_from_the_hookspecs():
    text = GUIDE.read_text()
    assert reference.update(text) == text, "stale: run python -m gateway.reference docs/authoring.md"


def test_every_hook_and_every_argument_is_in_the_guide():
    text = GUIDE.read_text()
    names = [fn.__name__ for _, fn in reference.hooks()]
    declared = [n for n, v in vars(hookspecs).items() if hasattr(v, f"{hookspecs.PROJECT}_spec")]
    assert sorted(names) == sorted(declared) and names
    for _, fn in reference.hooks():
        assert f"#### `{fn.__name__}`" in text
        for argument in inspect.signature(fn).parameters:
            assert re.search(rf"\b{argument}\b", text), (fn.__name__, argument)


def test_every_attribute_of_context_has_a_meaning():
    rows = reference._dataclass_table(calls.CallContext, reference.CONTEXT_MEANINGS)[2:]
    fields = [f.name for f in dataclasses.fields(calls.CallContext) if not f.name.startswith("_")]
    assert len(rows) == len(fields)
    for row in rows:
        assert not row.endswith("|  |"), f"no meaning for {row}"


def test_the_readme_links_the_guide():
    assert "(docs/authoring.md)" in (ROOT / "README.md").read_text()


def test_check_mode_of_the_generator_reports_a_stale_block(tmp_path, capsys):
    stale = tmp_path / "guide.md"
    stale.write_text(f"intro\n{reference.BEGIN}\nold text\n{reference.END}\noutro\n")
    assert reference.main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().out
    assert reference.main([str(stale)]) == 0
    fresh = stale.read_text()
    assert fresh.startswith("intro\n") and fresh.endswith("\noutro\n") and "wrapgate_export" in fresh
    assert reference.main(["--check", str(stale)]) == 0


def _plugin(**hooks):
    module = types.ModuleType("wrapgate_docs_example")
    for name, fn in hooks.items():
        setattr(module, name, fn)
    return module


def test_what_the_guide_says_about_plugins_that_do_not_load():
    registry = Registry()

    def wrapgate_ping():
        return None

    # The decorator forgotten: listed as an extension, as the guide's table says.
    registry.register(_plugin(wrapgate_ping=wrapgate_ping), "undecorated")
    assert registry.extensions == ["undecorated"] and "undecorated" not in registry.connectors

    @hookimpl
    def wrapgate_exprot():
        return None

    registry.register(_plugin(wrapgate_exprot=wrapgate_exprot), "typo")
    error = registry.connectors["typo"].error
    assert error.startswith("registration failed:") and "unknown hook 'wrapgate_exprot'" in error

    @hookimpl
    def wrapgate_ping(x):
        return None

    registry.register(_plugin(wrapgate_ping=wrapgate_ping), "badarg")
    assert "Argument(s) {'x'} are declared in the hookimpl but can not be found in the hookspec" in (
        registry.connectors["badarg"].error
    )


ARCHITECTURE = ROOT / "docs" / "architecture.md"


def test_the_readme_links_the_architecture_page():
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()


def test_every_path_the_architecture_page_names_exists():
    text = ARCHITECTURE.read_text()
    paths = set(re.findall(r"`((?:gateway|plugins|tests|scripts|docs|\.ci)/[\w./-]*)`", text))
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (ROOT / p.split(" ")[0]).exists())
    assert not missing, missing


def test_every_hook_and_every_name_of_the_architecture_page_is_real():
    """Each hook is on the page, and what it names on the core's classes exists."""
    from gateway import metrics, parsed, plugins

    text = ARCHITECTURE.read_text()
    for name in (n for n, v in vars(hookspecs).items() if hasattr(v, f"{hookspecs.PROJECT}_spec")):
        assert f"`{name}`" in text, name
    owners = {
        "Gateway": calls.Gateway,
        "Registry": plugins.Registry,
        "Connection": parsed.Connection,
        "Call": parsed.Call,
        "CallContext": calls.CallContext,
        "metrics": metrics,
    }
    # The "before" column of the table names what is gone; everything else must exist.
    head, _, moved = text.partition("## What moved where")
    now = [row.split(" | ")[-1] for row in moved.splitlines() if row.startswith("| ")]
    named = re.findall(
        r"(?<![/\w])(Gateway|Registry|Connection|Call|CallContext|metrics)\.(\w+)", head + "\n".join(now)
    )
    assert len(named) > 5
    for owner, attribute in named:
        cls = owners[owner]
        fields = getattr(cls, "__dataclass_fields__", {})
        assert hasattr(cls, attribute) or attribute in fields, f"{owner}.{attribute}"
    for attribute in re.findall(r"`(find|context|arguments)`", head):
        assert hasattr(calls.Gateway, attribute)
