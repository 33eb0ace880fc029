"""``batch-export report``: one self-contained HTML page about an archive, for people.

Gathers (``report_data``), renders (``report_html``, ``report_sections``,
``report_chart``) and writes. The page names the people whose data was
exported, so a file is written owner-only (0600) and atomically: a reader
never sees half a report, and an old report is replaced only by a whole new one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..durable import write_atomically
from ..errors import ConfigError
from .report_data import ReportData, gather
from .report_html import render_report

__all__ = ["STDOUT", "ReportOutcome", "make_report", "write_report"]

#: the ``--output`` that means stdout
STDOUT = "-"


@dataclass(frozen=True)
class ReportOutcome:
    """What was written where, and whether the archive verified."""

    output: str
    data: ReportData

    @property
    def verified(self) -> bool:
        return bool(self.data.verification and self.data.verification.get("ok"))


def write_report(text: str, output: str) -> None:
    """``text`` to the file ``output`` (0600, atomically), or to stdout for ``-``."""
    if output == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_atomically(Path(output), [text])


def _check_output(output: str) -> None:
    """``ConfigError`` for an output that cannot be a file: a directory, or inside a missing one."""
    if output == STDOUT:
        return
    path = Path(output)
    if path.is_dir():
        raise ConfigError(
            f"--output {output} is a directory; name the report's file, e.g. {path / 'report.html'}"
        )
    if not path.parent.is_dir():
        raise ConfigError(
            f"--output {output}: the directory {path.parent} does not exist; create it first"
        )


def make_report(
    out_dir: Path, output: str, *, keys: Sequence[Path] = (), title: str | None = None
) -> ReportOutcome:
    """Verify ``out_dir``, render its report and write it to ``output``.

    Raises ``ConfigError`` when ``out_dir`` is not an archive or ``output``
    names no possible file, ``OSError`` when it cannot be written.
    """
    _check_output(output)  # before verification, which may read for minutes
    data = gather(out_dir, keys=keys, title=title)
    write_report(render_report(data), output)
    return ReportOutcome(output, data)
