"""The apps import one way, from the top down (docs/architecture.md, "Layers"):

    reports -> campaigns, transactional -> delivery -> audience -> accounts -> common

Read from the source with `ast`, every import of every module counts, at module level or inside a
function: a function-level import cannot hide a cycle here. The only function-level imports of another
app allowed are in an AppConfig.ready() (Django's documented place to connect signals and registries).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# webhooks reads delivery's event table; campaigns and transactional know nothing of it (same layer: no import).
LAYER = {
    "common": 0, "accounts": 1, "audience": 2, "delivery": 3,
    "campaigns": 4, "transactional": 4, "webhooks": 4, "reports": 5,
}


def _modules():
    for app in LAYER:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield app, path


def _imports(path: Path):
    """(imported app, line, inside a function, inside AppConfig.ready) for each import of a project app."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node, function: str | None):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                if top in LAYER:
                    found.append((top, child.lineno, function))
            visit(child, function)

    visit(tree, None)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {app: set() for app in LAYER}
    for app, path in _modules():
        for target, _, _ in _imports(path):
            if target != app:
                graph[app].add(target)
    return graph


def test_the_apps_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def walk(app: str, trail: list[str]) -> bool:
        state[app] = 1
        for nxt in sorted(graph[app]):
            if state.get(nxt) == 1:
                cycle.extend([*trail, app, nxt])
                return True
            if state.get(nxt) is None and walk(nxt, [*trail, app]):
                return True
        state[app] = 2
        return False

    for app in LAYER:
        if state.get(app) is None and walk(app, []):
            break
    assert not cycle, "import cycle between apps: " + " -> ".join(cycle)


@pytest.mark.parametrize("app", list(LAYER))
def test_an_app_imports_only_the_layers_below_it(app):
    upward = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for owner, path in _modules()
        if owner == app
        for target, line, function in _imports(path)
        if LAYER[target] >= LAYER[app] and target != app and not (function == "ready" and path.name == "apps.py")
    ]
    assert upward == []


def test_no_function_level_import_of_another_app_outside_app_ready():
    hidden = [
        f"{path.relative_to(ROOT)}:{line} imports {target} inside {function}()"
        for app, path in _modules()
        for target, line, function in _imports(path)
        if function and target != app and not (function == "ready" and path.name == "apps.py")
    ]
    assert hidden == []


def test_the_walker_sees_a_function_level_import(tmp_path):
    # The walker itself must not be blind to the imports it exists to find.
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from campaigns.models import Campaign\n")
    assert _imports(module) == [("campaigns", 4, "f")]


def _imported_modules(path: Path) -> set[str]:
    """Full names of the project modules a file imports, anywhere in it (`from a.b import c` counts a.b and,
    when it is a module, a.b.c)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in LAYER}


def test_a_tasks_module_is_not_imported_back_by_what_it_imports():
    # A task module calls its services; a service that enqueues states the task's name (send_task) instead
    # of importing the task module, which would be a cycle, hidden or not by a function-level import.
    cycles = []
    for app in LAYER:
        tasks = ROOT / app / "tasks.py"
        if not tasks.exists():
            continue
        for module in sorted(_imported_modules(tasks)):
            path = ROOT / (module.replace(".", "/") + ".py")
            if path.exists() and f"{app}.tasks" in _imported_modules(path):
                cycles.append(f"{app}.tasks -> {module} -> {app}.tasks")
    assert cycles == []
