"""The layout issue 10 asks for, checked on the source itself: no import cycles (modules or
packages), no function-local imports of gateway modules, small modules and functions, every
module named in the README's layout table, and no string request or app keys."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gateway"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 45


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imported(node: ast.AST, current: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.module:
        base = node.module
        if node.level:
            base = ".".join([*current.split(".")[: -node.level], node.module])
        yield base
        for alias in node.names:  # `from gateway.x import module`
            if f"{base}.{alias.name}" in MODULES:
                yield f"{base}.{alias.name}"


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            for target in _imported(node, name):
                if target in MODULES and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or MODULES[module].name == "__init__.py" \
        else module


def test_no_import_cycle_between_modules() -> None:
    assert _cycle(_edges()) is None


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for module, targets in _edges().items():
        source = _package_of(module)
        graph.setdefault(source, set())
        for target in targets:
            if _package_of(target) != source and _package_of(target) != "gateway":
                graph[source].add(_package_of(target))
    assert _cycle(graph) is None


def test_gateway_imports_are_at_module_level() -> None:
    local = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if any(t.startswith("gateway") for t in _imported(inner, name)):
                        local.append(f"{name}:{inner.lineno}")
    # The one exception: `serve` imports the server (uvloop, aiohttp runners) only when serving.
    assert local == ["gateway.cli:" + str(_serve_import_line())]


def _serve_import_line() -> int:
    tree = ast.parse(MODULES["gateway.cli"].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "cmd_serve":
            return next(i.lineno for i in ast.walk(node) if isinstance(i, ast.ImportFrom))
    raise AssertionError("cmd_serve not found")


def test_modules_and_functions_are_small() -> None:
    long_modules = [f"{n} ({len(p.read_text().splitlines())})" for n, p in MODULES.items()
                    if len(p.read_text().splitlines()) > MAX_MODULE_LINES]
    long_functions = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name} ({length})")
    assert long_modules == []
    assert long_functions == []


def test_readme_layout_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout"):]
    table = table[: table.index("\n\n", table.index("| module |"))]
    named: set[str] = set()
    for cell in re.findall(r"^\| (.+?) \|", table, re.MULTILINE):
        directory = ""
        for entry in re.findall(r"`([^`]+)`", cell):
            if entry.startswith("gateway/"):
                directory = entry.rsplit("/", 1)[0] if entry.endswith(".py") else entry
                named.add(entry.rstrip("/"))
            else:
                named.add(f"{directory}/{entry}")
    missing = []
    for path in MODULES.values():
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" or relative in named:
            continue
        if any(relative.startswith(f"{d}/") for d in named if not d.endswith(".py")):
            continue
        missing.append(relative)
    assert missing == []


def test_no_string_request_or_app_keys() -> None:
    pattern = re.compile(r"""(request|app)\[\s*["']|request\.get\(\s*["']""")
    found = [f"{n}:{i}" for n, p in MODULES.items()
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
