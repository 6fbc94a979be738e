"""The core's modules import downward only: no cycle, not even one hidden by an
import inside a function (those count here as if they were at the top).
Imports under ``if TYPE_CHECKING:`` are for annotations and do not count."""

import ast
from pathlib import Path

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
BOTTOM = ("gateway.hookspecs", "gateway.errors", "gateway.config")


def _module(path):
    parts = ("gateway", *path.relative_to(GATEWAY).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree):
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return [n for n in ast.walk(tree) if id(n) not in skip]


def graph():
    modules = {_module(p): p for p in GATEWAY.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            # `from . import x` names module gateway.x, not the package itself.
            named = [c for c in candidates[1:] if c in modules]
            found.update(named or [c for c in candidates[:1] if c in modules])
        edges[name] = found - {name}
    return edges


def test_no_import_cycles():
    edges = graph()
    state, cycles = {}, []

    def visit(module, stack):
        state[module] = "open"
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert not cycles, cycles


def test_the_bottom_modules_import_nothing_above_them():
    edges = graph()
    assert edges["gateway.hookspecs"] == set() and edges["gateway.errors"] == set()
    for module in BOTTOM:
        assert edges[module] <= set(BOTTOM), (module, edges[module])
