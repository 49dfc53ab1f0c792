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


def test_executor_names_are_checked_without_importing_executors():
    from bench.config.settings import EXECUTOR_NAMES
    from bench.executors import EXECUTORS

    assert tuple(EXECUTORS) == EXECUTOR_NAMES
    assert "bench.executors" not in _graph(module_level_only=False)["bench.config.settings"]


RUN_FILES = (
    "config.yaml",
    "env.json",
    "tolerances.json",
    "data.json",
    "labels.npz",
    "label_issues.csv",
    "folds.npy",
    "posteriors.json",
    "recommendation.json",
    "ceilings.json",
    "results.jsonl",
    "summary.csv",
    "summary.md",
    "report.html",
    "member_probs.npy",
    "bn_stats.npy",
    "label_issues.npy",
    "label_quality.npy",
    "probs.npy",
    "predict_batch_s.npy",
    "spec.json",
    "result.json",
)


def test_only_the_run_folder_object_spells_run_file_names():
    """bench/rundir.py owns every file name of a run folder; nobody else spells one in code."""
    offenders = []
    for path in (ROOT / "bench").rglob("*.py"):
        if path.name == "rundir.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in RUN_FILES:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert not offenders, offenders


def test_error_types_import_no_torch():
    """Every user-error type has one root and lives where importing it loads no torch (cheap for the CLI)."""
    import subprocess
    import sys

    code = (
        "import sys; import bench.errors as e; from swag.errors import SwagbenchError;"
        "assert all(issubclass(t, SwagbenchError) for t in (e.ConfigError, e.DataError, e.ResultsError,"
        " e.PosteriorError, e.ModelSpecError, e.BackendError, e.UnknownBackendError));"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
