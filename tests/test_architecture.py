"""The package's shape, checked: imports point down the stack, no module shadows a public
function, the library does not print, files stay small."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import xtl

PACKAGE = Path(xtl.__file__).parent
#: Stages in the order data flows; a module may import its own stage and the ones before it.
RANK = {"_lazy": 0, "errors": 0, "options": 0, "hashing": 0, "schema": 0,
        "models": 1, "patching": 2, "tasks": 2, "engine": 3, "evaluation": 4, "analysis": 5,
        "interpret": 5, "training": 5, "strategies": 5, "figures": 6, "cli": 7}
#: Conveniences that draw a result on request: the only upward imports, inside the method.
DRAW_ON_REQUEST = {("interpret.logit_lens", "figure"), ("interpret.case", "figure"), ("interpret.showcase", "figures"),
                   ("engine.screening", "figure"), ("interpret.languages", "figure")}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join(parts), path


def stage(module: str) -> str | None:
    head = module.split(".")[0]
    return head if head in RANK else None


def imports(path: Path):
    """(imported xtl module, enclosing function name or None) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("xtl"):
                names = [child.module + "." + a.name for a in child.names]
                out.extend((n, f) for n in ([child.module] if child.module != "xtl" else names))
            elif isinstance(child, ast.Import):
                out.extend((a.name, f) for a in child.names if a.name.startswith("xtl"))
            visit(child, f)
    visit(tree, None)
    return out


def test_imports_point_down_the_stack():
    wrong = []
    for module, path in modules():
        own = stage(module)
        if own is None:
            continue
        for target, func in imports(path):
            other = stage(target[4:]) if target.startswith("xtl.") else None
            if other is None:
                continue
            if RANK[other] > RANK[own] and (module, func) not in DRAW_ON_REQUEST:
                wrong.append(f"{module} ({own}) imports {target} ({other}) in {func or 'module scope'}")
    assert wrong == []


def import_circles() -> list[list[str]]:
    """Groups of xtl modules that import each other, directly or round a loop, counting imports
    inside functions too (a package's ``__init__`` only re-exports lazily and is left out)."""
    mods = dict(modules())
    graph = {}
    for module, path in mods.items():
        deps = set()
        for target, _ in imports(path):
            name = target[4:] if target.startswith("xtl.") else target
            name = name if name in mods else name.rsplit(".", 1)[0]
            if name in mods and name != module and mods[name].name != "__init__.py":
                deps.add(name)
        graph[module] = deps
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return circles


def test_no_two_modules_import_each_other():
    """A module that needs another's answer imports it; the other never imports it back, not even
    inside a function (the dispatch lives a level above both: e.g. xtl.engine.engines)."""
    assert import_circles() == []


def test_computation_never_imports_figures_at_module_scope():
    for module, path in modules():
        own = stage(module)
        if own in (None, "figures", "cli"):
            continue
        assert not any(t.startswith("xtl.figures") and f is None for t, f in imports(path)), module


def test_no_module_shares_its_name_with_a_public_function():
    for name in xtl.__all__:
        if callable(getattr(xtl, name)) and not isinstance(getattr(xtl, name), type):
            assert importlib.util.find_spec(f"xtl.{name}") is None, f"xtl.{name} is both a module and a function"
    for package in RANK:
        spec = importlib.util.find_spec(f"xtl.{package}")
        if spec is None or not spec.submodule_search_locations:
            continue
        pkg = importlib.import_module(f"xtl.{package}")
        for name in getattr(pkg, "__all__", []):
            if callable(getattr(pkg, name)) and not isinstance(getattr(pkg, name), type):
                assert importlib.util.find_spec(f"xtl.{package}.{name}") is None, f"xtl.{package}.{name}"
    assert xtl.transplant.__module__ == "xtl.patching.single" and xtl.lens.__module__ == "xtl.interpret.logit_lens"
    importlib.import_module("xtl.interpret.logit_lens")  # importing the modules leaves the functions
    importlib.import_module("xtl.patching.single")
    assert callable(xtl.transplant) and callable(xtl.lens)


def test_the_library_does_not_print():
    offenders = []
    for module, path in modules():
        if stage(module) == "cli":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{module}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in ("stderr", "stdout") and \
                    isinstance(node.value, ast.Name) and node.value.id == "sys":
                offenders.append(f"{module}:{node.lineno} sys.{node.attr}")
    assert offenders == []


def test_files_stay_small():
    big = {m: n for m, p in modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert big == {}


@pytest.mark.parametrize("light", ["xtl", "xtl.cli.parser", "xtl.cli.checks", "xtl.patching.sites",
                                   "xtl.tasks", "xtl.schema", "xtl.options", "xtl.models.names"])
def test_light_modules_do_not_load_torch(light):
    import subprocess
    import sys

    code = f"import sys, {light}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
