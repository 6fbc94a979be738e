"""Meta-tests that keep the plugin contract honest: every hook documented, every hook used."""

import inspect
from pathlib import Path

import pluggy

from gateway import hookspecs

HOOKS = [name for name, fn in vars(hookspecs).items() if name.startswith("wrapgate_") and callable(fn)]
TESTKIT = Path(__file__).parent / "testkit" / "wrapgate_testkit"


def test_there_are_hooks():
    assert {"wrapgate_ping", "wrapgate_export", "wrapgate_import"} <= set(HOOKS)


def test_every_hook_is_a_spec_with_a_contract_docstring():
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert getattr(fn, "wrapgate_spec", None) is not None, f"{name} is not a hookspec"
        doc = inspect.getdoc(fn) or ""
        assert ":returns:" in doc, f"{name}: the docstring must say what it returns"


def test_every_call_hook_documents_its_parameters_and_errors():
    for name in ("wrapgate_export", "wrapgate_import"):
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert ":param" in doc and ":raises" in doc


def test_every_hook_is_implemented_by_a_test_plugin():
    source = "".join(p.read_text() for p in TESTKIT.glob("*.py"))
    for name in HOOKS:
        assert f"def {name}(" in source, f"no test plugin implements {name}"


def test_hookimpl_marker_is_the_projects():
    from gateway import hookimpl

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
