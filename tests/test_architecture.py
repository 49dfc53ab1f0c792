"""The package structure docs/architecture.md describes: one import name, rooms in layers, no import cycles."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "swagbench": "swagbench",
    "swag": "swagbench.swag",
    "backends": "swagbench.backends",
    "bench": "swagbench.bench",
}

# The rooms, lowest first: a module imports only from its own room or those below it, never from one above (which
# may import it). Longest prefix decides a module's room; swagbench.bench's other modules (run, job, api, cli,
# posteriors, predictor, prechecks, estimate, tune) are the top.
LAYERS = (
    ("swagbench.errors", "swagbench.checked", "swagbench.imports", "swagbench"),
    ("swagbench.swag",),
    ("swagbench.backends",),
    ("swagbench.bench.errors", "swagbench.bench.progress"),
    ("swagbench.bench.config",),
    ("swagbench.bench.dataset",),
    ("swagbench.bench.record",),
    ("swagbench.bench.measure",),
    ("swagbench.bench.answer",),
    ("swagbench.bench.execute",),
    ("swagbench.bench.report",),
    ("swagbench.bench",),
)


def layer(module: str) -> int:
    """The index in LAYERS of ``module``'s room (the longest prefix that names it)."""
    best = max(
        ((len(p), i) for i, room in enumerate(LAYERS) for p in room if module == p or module.startswith(p + ".")),
        default=None,
    )
    assert best is not None, f"{module} is in no room of LAYERS"
    return best[1]


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join((FOLDERS[rel.parts[0]], *rel.parts[1:])).removesuffix(".__init__")


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
        found.update(n for n in names if n.split(".")[0] in {"swagbench", *FOLDERS})
    return found


def _files() -> dict[str, Path]:
    return {_module(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    files = _files()
    return {m: {i for i in _imports(p, module_level_only) if i in files} - {m} for m, p in files.items()}


def test_code_imports_only_the_one_import_name():
    """Every import of our code goes through ``swagbench``: a bare ``bench``/``swag``/``backends`` would be another
    distribution's package once installed (or this checkout's folder, by accident of the working directory)."""
    bare = [
        f"{m}: {i}"
        for m, p in _files().items()
        for i in _imports(p, module_level_only=False)
        if i.split(".")[0] != "swagbench"
    ]
    assert not bare, bare


def test_rooms_import_only_rooms_below():
    wrong = [
        f"{m} (room {layer(m)}) imports {i} (room {layer(i)})"
        for m, deps in _graph(module_level_only=False).items()
        for i in deps
        if layer(i) > layer(m)
    ]
    assert not wrong, wrong


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages explicitly (the folders are mapped onto swagbench.*): a new room that is not
    listed would be missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {_module(p) for folder in FOLDERS for p in (ROOT / folder).rglob("__init__.py")}
    assert listed == folders


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
    from swagbench.bench.config.settings import EXECUTOR_NAMES
    from swagbench.bench.execute.executors import EXECUTORS

    assert tuple(EXECUTORS) == EXECUTOR_NAMES
    assert "swagbench.bench.execute.executors" not in _graph(module_level_only=False)["swagbench.bench.config.settings"]


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
    "journal.jsonl",
    "job.json",
    "job.md",
    "pred_probs.npy",
)


def test_only_the_run_folder_object_spells_run_file_names():
    """bench/record/rundir.py owns every file name of a run folder; nobody else spells one in code."""
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
        "import sys; import swagbench.bench.errors as e; from swagbench.errors import SwagbenchError;"
        "assert all(issubclass(t, SwagbenchError) for t in (e.ConfigError, e.DataError, e.ResultsError,"
        " e.PosteriorError, e.ModelSpecError, e.BackendError, e.UnknownBackendError));"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


MAX_FUNCTION_LINES = 60  # docs/architecture.md "Rules the code keeps"


def test_no_function_is_longer_than_sixty_lines():
    """A function longer than ~60 lines is usually two steps that want names (STYLE.md): kept so in the package."""
    long = []
    for module, path in _files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, long


CHILD_RUN = ("start_run(", '"swagbench.bench.cli", "run"')  # a full run in a child process


def test_tests_that_run_swagbench_in_a_child_process_are_marked_e2e():
    """conftest.py fails an unmarked test that makes a run in its own process; runs in a child process are found
    here, in the test's body or in a helper of its module that it calls."""
    unmarked = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        module_e2e = "pytestmark = pytest.mark.e2e" in text
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        runs = {name for name, f in functions.items() if any(m in ast.get_source_segment(text, f) for m in CHILD_RUN)}
        grew = True
        while grew:  # helpers that call helpers that run
            called = {
                name
                for name, f in functions.items()
                if any(isinstance(c, ast.Call) and getattr(c.func, "id", None) in runs for c in ast.walk(f))
            }
            grew = not called <= runs
            runs |= called
        for name in sorted(runs):
            f = functions[name]
            marked = any("e2e" in ast.get_source_segment(text, d) for d in f.decorator_list)
            if name.startswith("test_") and not (marked or module_e2e):
                unmarked.append(f"{path.name}::{name}")
    assert not unmarked, unmarked
