"""``batch-export status`` and ``batch-export verify``: reading a state directory, changing nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import ExportError
from ..evidence.status import collect_status, format_status
from ..evidence.verify import verify_directory
from ..redaction import Redactor
from .common import CONTEXT, failure
from .console import Console

__all__ = ["status", "verify"]


@click.command(context_settings=CONTEXT)
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
def status(out_dir: Path, as_json: bool) -> None:
    """Show the progress of the export in DIR: counts, open requests, failures, ETA.

    Read-only: safe to run while a run is still working in DIR.

    \b
    Examples:
      batch-export status exports/
      batch-export status exports/ --json | jq .remaining
    """
    try:
        report = collect_status(out_dir)
    except ExportError as exc:
        raise failure(str(exc), Redactor(), Console()) from None
    click.echo(json.dumps(report, indent=2) if as_json else format_status(report))


@click.command(context_settings=CONTEXT)
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def verify(out_dir: Path, as_json: bool) -> None:
    """Re-hash every exported file in DIR against its manifest and re-check its JSON.

    Exit status 0 when every done entry verifies, 1 when any problem is found
    (each listed on stdout), 2 when DIR is not an export directory.

    \b
    Examples:
      batch-export verify exports/
      batch-export verify /archive/2026-11-01 --json > evidence.json
    """
    try:
        report = verify_directory(out_dir)
    except ExportError as exc:
        raise failure(str(exc), Redactor(), Console()) from None
    if as_json:
        click.echo(json.dumps(report.to_json(out_dir), indent=2))
    else:
        for problem in report.problems:
            click.echo(f"{problem.file or '-'}: {problem.kind} {problem.id}: {problem.problem}")
        click.echo(
            f"verified {report.verified} of {report.checked} files ({report.bytes} bytes); "
            f"{len(report.problems)} problems; {report.not_done} entries not done",
            err=True,
        )
    sys.exit(0 if report.ok else 1)
