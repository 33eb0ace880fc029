"""``batch-export report``: an HTML report on an archive for people who do not use a shell."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ..errors import ExportError
from ..evidence.report import STDOUT, make_report
from ..redaction import Redactor
from .common import CONTEXT, failure
from .console import Console

__all__ = ["report"]


@click.command(context_settings=CONTEXT)
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE",
    help="Where to write the HTML page (created 0600; - for stdout).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="PUB",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A public key the seals' signature is checked against (repeatable).",
)
@click.option("--title", help="The page's title (default: the archive's folder name).")
def report(out_dir: Path, output: str, keys: tuple[Path, ...], title: str | None) -> None:
    """Write one self-contained HTML page about the archive in DIR, for an auditor.

    It verifies DIR first (as `verify` does) and shows the result, the
    counts, every run on a timeline with a chart of exports per minute, the
    rate found for the account, failures grouped by cause, and the inputs.
    The page needs no network and prints well. It names the people whose
    data was exported: keep it as confidential as the archive.

    Exit status 0 when the report is written and DIR verifies, 1 when it is
    written but verification found a problem, 2 when DIR is not an export
    directory or FILE cannot be written.

    \b
    Examples:
      batch-export report exports/ -o report.html
      batch-export report /archive/2026-11-01 -o /srv/reports/2026-11-01.html --key seal.pub
    """
    console = Console()
    try:
        outcome = make_report(out_dir, output, keys=keys, title=title)
    except ExportError as exc:
        raise failure(str(exc), Redactor(), console) from None
    except OSError as exc:
        raise failure(
            f"cannot write the report to {output}: {exc.strerror or exc}", Redactor(), console
        ) from None
    if output != STDOUT:
        console.say(logging.INFO, f"wrote the report on {out_dir} to {output}")
    if not outcome.verified:
        console.say(logging.WARNING, "verification found problems; the report lists them")
    sys.exit(0 if outcome.verified else 1)
