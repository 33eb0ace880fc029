"""One byte format: the report and the progress line (and the stats log, through it) say sizes alike."""

from __future__ import annotations

import ast
from pathlib import Path

import batch_export
from batch_export.evidence.report_format import human_bytes
from batch_export.run import progress

PACKAGE = Path(batch_export.__file__).parent


def test_human_bytes_is_defined_once() -> None:
    """No second ``def human_bytes`` anywhere in the package (two drifted apart once)."""
    defining = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "human_bytes"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert defining == ["evidence/report_format.py"]
    assert progress.human_bytes is human_bytes


def test_human_bytes_counts_in_decimal_units() -> None:
    """Bytes up to 999, then kB, MB, … with two decimals."""
    assert human_bytes(0) == "0 bytes"
    assert human_bytes(999) == "999 bytes"
    assert human_bytes(2_800_000) == "2.80 MB"
    assert human_bytes(40_200) == "40.20 kB"
    assert human_bytes(5 * 10**15) == "5000.00 TB"
