"""The imports between our modules point one way: workspaces -> projects -> accounts -> config.

Every module of the four packages is parsed (no import runs), and every import counts: at module
level, inside functions, and under ``if TYPE_CHECKING:``. An import inside a function still makes
the module depend on the other one; moving it there only hides a cycle until the function runs.
Migrations are left out: they name other apps' migrations by design, and Django orders them.

Two rules:

* no cycle through a module of workspaces: the tasks import the services (the reconciler and idle
  auto-stop are services too), and the services queue the tasks by name through
  ``workspaces/scheduling.py``, never importing the task module back;
* the apps are layered: a module of accounts imports nothing of projects or workspaces, a module
  of projects nothing of workspaces, and config (below them all) imports no app at module level.
  The few exceptions are listed below with their reasons, and each must still be needed (a stale
  exception fails too, so the list cannot grow old).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "accounts", "projects", "workspaces")
# Lower layers first: a module may import its own package and the ones before it.
LAYER = {package: rank for rank, package in enumerate(PACKAGES)}

# The hardware catalogue and its rules: the one piece of workspace knowledge the apps below need
# (accounts checks a user's default hardware by exactly the rules of a create). A leaf: it imports
# nothing of the apps above config (asserted below), so importing it from below makes no cycle.
# The table of lifecycle operations: read by the metrics (its labels) as by the services; a leaf too.
LEAVES = {"workspaces.hardware", "workspaces.operations"}

# (importer, imported): why this upward import is allowed.
EXCEPTIONS = {
    ("config.devserver", "accounts.models"): "`make run` seeds a demo user (in a function, after setup)",
    ("config.devserver", "accounts.services"): "`make run` seeds a demo user and token",
    ("config.devserver", "accounts.tokens"): "`make run` checks the demo token it kept is still this one",
    ("config.devserver", "projects.models"): "`make run` seeds a demo project",
    ("config.devserver", "projects.services"): "`make run` seeds a demo project",
    ("config.operations.metrics", "workspaces.models"): "the workspace gauges read the table at scrape time",
    ("accounts.admin", "workspaces.quotas"): (
        "the operator console shows a user's quota use next to their overrides; nothing imports an "
        "admin module (Django's autodiscovery loads it last), so it cannot close a cycle"
    ),
    ("accounts.api.serializers", "workspaces.api.serializers"): (
        "the user settings' hardware fields reuse the create's (CpuKindInputField, HardwareSerializer); "
        "to move beside workspaces/hardware.py once the CpuKind schema change of issue 13 has landed"
    ),
}
# config modules whose function-level imports of apps are listed above: they sit on top as wiring
# (the dev server, the metrics endpoint), whatever their folder says. Any other config module, and
# any module-level import in these, must not import an app. (Settings and the URL map name apps by
# strings, INSTALLED_APPS and include("..."), which import nothing here.)
CONFIG_WIRING = {"config.devserver", "config.operations.metrics"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """``(imported first-party module, at module level?)`` for every import in ``module``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    # Imports under a module-level `if`/`try` (TYPE_CHECKING, optional dependencies) run at import.
    for node in tree.body:
        if isinstance(node, (ast.If, ast.Try)):
            top_level.update(id(child) for child in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from workspaces import services` imports the module workspaces.services.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        for name in names:
            target = _first_party(name)
            if target and target != module:
                found.append((target, id(node) in top_level))
    return found


def _first_party(name: str) -> str | None:
    """The deepest module of ours that ``name`` is or is inside (None if it is not ours)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _app(module: str) -> str:
    return module.split(".")[0]


def _upward_imports() -> dict[tuple[str, str], bool]:
    """Every import that points up the layers: ``(importer, imported) -> at module level?``."""
    upward: dict[tuple[str, str], bool] = {}
    for module, imports in GRAPH.items():
        for target, at_module_level in imports:
            if LAYER[_app(target)] > LAYER[_app(module)] and target not in LEAVES:
                upward[(module, target)] = upward.get((module, target), False) or at_module_level
    return upward


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in {t for t, _ in GRAPH[node]}:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_every_kind_of_import():
    """The parser itself: function-level and relative imports are found (a walk that missed them
    would pass everything)."""
    assert ("workspaces.services", True) in GRAPH["workspaces.tasks"]
    assert ("workspaces.hardware", False) in GRAPH["workspaces.apps"]  # inside ready()
    assert ("workspaces.drivers.base", True) in GRAPH["workspaces.drivers"]  # a relative import
    assert {"workspaces.operations", "workspaces.services"} <= {t for t, _ in GRAPH["workspaces.reconciler"]}


def test_no_cycle_goes_through_a_workspaces_module():
    cycles = [cycle for cycle in _cycles() if any(_app(module) == "workspaces" for module in cycle)]
    assert cycles == [], f"modules that import each other (directly or through others): {cycles}"


def test_services_and_the_services_above_them_never_import_the_tasks():
    for module in (
        "workspaces.services",
        "workspaces.reconciler",
        "workspaces.idle",
        "workspaces.scheduling",
    ):
        assert "workspaces.tasks" not in {t for t, _ in GRAPH[module]}, module


def test_the_tasks_that_services_queue_by_name_are_the_registered_ones():
    """The scheduling seam sends by name: a renamed task would be a message no worker takes."""
    from config.celery import app
    from workspaces import scheduling, tasks

    registered = {
        task.name for task in (tasks.provision_workspace, tasks.stop_workspace, tasks.destroy_workspace)
    }
    assert scheduling.task_names() == registered
    assert registered <= set(app.tasks)


def test_the_apps_import_downwards_only():
    upward = _upward_imports()
    unexplained = sorted(edge for edge in upward if edge not in EXCEPTIONS)
    assert unexplained == [], (
        "these imports point up the layers workspaces -> projects -> accounts -> config; move what "
        f"is shared below, or pass it in: {unexplained}"
    )
    stale = sorted(edge for edge in EXCEPTIONS if edge not in upward)
    assert stale == [], f"listed as exceptions but no longer imported (remove them): {stale}"


def test_config_imports_no_app_at_module_level_and_only_its_wiring_does_at_all():
    for (module, target), at_module_level in _upward_imports().items():
        if _app(module) != "config":
            continue
        assert module in CONFIG_WIRING, f"{module} imports {target}: config sits below the apps"
        assert not at_module_level, f"{module} imports {target} at module level"


def test_the_leaves_imported_from_below_import_nothing_above_config():
    for leaf in LEAVES:
        above = sorted({t for t, _ in GRAPH[leaf] if _app(t) != "config"})
        assert above == [], f"{leaf} is imported from below, so it must stay a leaf: {above}"
