"""The package's shape: small modules, no import cycle, a pinned public API."""

from __future__ import annotations

import ast
from pathlib import Path

import batch_export

PACKAGE = Path(batch_export.__file__).resolve().parent
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Every module of the exporter (not the simulator), by dotted name."""
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "simulator" or parts[-1] == "__main__":
            continue  # the simulator is not the exporter; __main__ runs on import
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(("batch_export", *parts))] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The exporter modules ``name`` imports at module level (and for type checking)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    nodes: list[ast.stmt] = []
    for node in tree.body:
        # Imports for type checking only are edges too: they are how cycles hide.
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            nodes.extend(node.body)
        else:
            nodes.append(node)
    for node in nodes:
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def test_no_module_is_longer_than_400_lines() -> None:
    """Every module of the package, the simulator included, stays under 400 lines."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_there_is_no_import_cycle() -> None:
    """No exporter module imports, directly or not, a module that imports it back."""
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # Packages re-export their children; an edge into a package is an edge into it only.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                cycle = [*stack[stack.index(child) :], child]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if child not in state:
                visit(child)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_there_is_no_cycle_between_sub_packages() -> None:
    """The stages (input, platform, run, storage, evidence, cli) import each other without a cycle."""
    modules = _modules()
    known = set(modules)

    def stage(name: str) -> str:
        parts = name.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        for target in _imports(name, path, known):
            if stage(target) != stage(name):
                edges.setdefault(stage(name), set()).add(stage(target))
    for start in edges:
        seen: set[str] = set()
        frontier = set(edges.get(start, ()))
        while frontier:
            node = frontier.pop()
            assert node != start, f"sub-package cycle through {start}: {edges}"
            if node not in seen:
                seen.add(node)
                frontier |= edges.get(node, set())


def test_public_api_is_pinned() -> None:
    """``batch_export.__all__`` is exactly the documented public API, and every name exists."""
    assert sorted(batch_export.__all__) == sorted(
        [
            "ApiSettings",
            "AuthError",
            "ConfigError",
            "ExportError",
            "InputError",
            "IntegrityError",
            "InternalError",
            "MalformedExportError",
            "OutageError",
            "ProgressSnapshot",
            "RateLimitedError",
            "RateLimiter",
            "RequestGoneError",
            "RetryPolicy",
            "RunOptions",
            "RunResult",
            "Secret",
            "StorageError",
            "Target",
            "TargetError",
            "TargetKind",
            "TransientError",
            "UnreachableError",
            "WrongTargetError",
            "__version__",
            "export",
            "run_export",
        ]
    )
    for name in batch_export.__all__:
        assert hasattr(batch_export, name), name


def test_every_module_declares_all_and_it_is_true() -> None:
    """Each exporter module lists its public names in ``__all__``, and each one exists."""
    import importlib

    for name in _modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        for item in exported:
            assert hasattr(module, item), f"{name}.__all__ names {item!r}, which it lacks"
