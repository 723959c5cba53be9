"""The core's layering (docs/design.md): no module imports from a layer above it, no cycles.

Read from the source: every ``import`` of a ``deepcore_core`` module, at module level or in a
function, except those under ``if TYPE_CHECKING:`` (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import deepcore_core

ROOT = Path(deepcore_core.__file__).parent

#: layer of each module (prefix match, longest first); a module may import its own layer
#: and the layers below
LAYERS = {
    # 0: foundations, no deepcore imports above them
    "_version": 0,
    "errors": 0,
    "log": 0,
    "needs": 0,
    "options": 0,
    "_io": 0,
    "progress": 0,
    "gradients": 0,
    "budget": 0,
    "blocks": 0,
    "selection": 0,
    "dynamics": 0,
    "distributed": 0,
    "neighbors": 0,
    "rules": 0,
    "stats": 0,
    "provenance": 0,
    "cost": 0,
    "cache": 0,
    "engine.config": 0,
    "clustering": 0,
    "dedup": 0,
    "embedding_store": 0,
    # 1: what a selection is made of
    "context": 1,
    "selector": 1,
    "samplers": 1,
    "registry": 1,
    "hookspecs": 1,
    "submodular": 1,
    # 2: data, networks and the training engine
    "data": 2,
    "nets": 2,
    "engine": 2,
    "schedules": 2,
    "encoders": 2,
    # 3: the plugin host and the core's own hook implementations
    "plugins": 3,
    "builtin": 3,
    # 4: the settings model
    "settings": 4,
    # 5: the use cases every front end calls
    "workflow": 5,
    # 6: the front ends' own layer: the Python API, experiments and reports
    "api": 6,
    "lightning": 6,
    "experiment": 6,
    "report": 6,
    "cost_table": 6,
    "report_html": 6,
    "plots": 6,
    # 7: the command line and the public package
    "cli": 7,
    "testing": 7,
    "__init__": 7,
    "__main__": 7,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
    return ".".join(parts)


def layer(name: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(f"module deepcore_core.{name} has no layer in LAYERS")


def imports(path: Path) -> set[str]:
    """The deepcore_core modules ``path`` imports (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "deepcore_core":
                out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("deepcore_core.")}
    return {o.removeprefix("deepcore_core").removeprefix(".") for o in out}


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for target in imports(path):
            while target not in mods and "." in target:  # a name imported from a module
                target = target.rsplit(".", 1)[0]
            if target not in mods:
                target = "__init__"  # from deepcore_core import X
            if target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def test_every_module_has_a_layer():
    for name in graph():
        layer(name)


def test_no_module_imports_from_a_layer_above():
    bad = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in graph().items()
        for b in targets
        if layer(b) > layer(a)
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(m) :], m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)


def test_cli_and_listing_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, deepcore_core.cli, deepcore_core.settings;"
        "from deepcore_core.plugins import PluginHost; PluginHost(load_entrypoints=True).registry;"
        "print(sorted(m for m in ('torch', 'scipy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_function_is_over_80_lines():
    """Functions stay readable: at most 80 lines each, their docstrings aside."""
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = node.body[0]
            doc = 0
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                doc = (first.end_lineno or first.lineno) - first.lineno + 1
            lines = (node.end_lineno or node.lineno) - node.lineno + 1 - doc
            if lines > 80:
                long.append(f"{module_name(path)}.{node.name}: {lines} lines")
    assert not long, "\n".join(long)
