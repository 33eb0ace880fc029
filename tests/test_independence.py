"""The simulator plays the other side of the wire: it must share no code with the exporter."""

from __future__ import annotations

import ast
from pathlib import Path

SIMULATOR = Path(__file__).resolve().parent.parent / "batch_export" / "simulator"


def test_simulator_imports_nothing_from_the_exporter() -> None:
    """No module under batch_export/simulator imports batch_export outside the simulator."""
    offenders = []
    for path in SIMULATOR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                if node.level >= 2 or (
                    node.level == 0
                    and name.startswith("batch_export")
                    and not name.startswith("batch_export.simulator")
                ):
                    offenders.append(f"{path.name}: from {'.' * node.level}{name}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.name}: import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("batch_export")
                    and not alias.name.startswith("batch_export.simulator")
                ]
    assert offenders == []
