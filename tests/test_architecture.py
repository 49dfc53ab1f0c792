"""The package structure docs/architecture.md describes: swag <- backends <- bench, no import cycles."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("swag", "backends", "bench")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path, module_level_only: bool) -> set[str]:
    """Modules of this repo that ``path`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    files = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {m: {i for i in _imports(p, module_level_only) if i in files} - {m} for m, p in files.items()}


def test_packages_depend_one_way():
    order = {pkg: i for i, pkg in enumerate(PACKAGES)}  # swag <- backends <- bench
    wrong = [
        f"{m} imports {i}"
        for m, deps in _graph(module_level_only=False).items()
        for i in deps
        if order[i.split(".")[0]] > order[m.split(".")[0]]
    ]
    assert not wrong, wrong


def test_no_import_cycles():
    """No cycle among the modules' imports, lazy (in-function) ones included."""
    graph = _graph(module_level_only=False)
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles
