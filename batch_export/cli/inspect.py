"""``batch-export status`` and ``batch-export verify``: reading a state directory, changing nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import ExportError
from ..evidence.destination import recorded_settings
from ..evidence.status import collect_status, format_status, write_failed_ids
from ..evidence.verify import format_proof, verify_directory
from ..redaction import Redactor
from ..storage.choose import store_sink
from .common import CONTEXT, failure
from .console import Console
from .storage import access_options

__all__ = ["status", "verify"]


@click.command(context_settings=CONTEXT)
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
@click.option(
    "--failed-ids",
    is_flag=True,
    help="Print only the failed targets' IDs, as a CSV that `run` reads (to retry them).",
)
def status(out_dir: Path, as_json: bool, failed_ids: bool) -> None:
    """Show whether the export in DIR is running, stopped or finished, and how far it got.

    State (running with its pid; stopped by SIGINT, SIGTERM, a fatal error
    or killed; finished, with the exit code), counts, open requests, the
    rate and ETA while running, and failures grouped by cause with example
    IDs. Times are ISO 8601 UTC.

    Read-only: safe to run while a run is still working in DIR, and it never
    stops a run from starting in DIR.

    --failed-ids writes the failed targets (not the pending ones: rerunning
    the original command resumes those) with a header for the kind, e.g.
    profile_id; feed it to `run` with the same --out (and --kind).

    \b
    Examples:
      batch-export status exports/
      batch-export status exports/ --json | jq .state
      batch-export status exports/ --failed-ids > retry.csv
      batch-export run retry.csv --out exports/
    """
    if as_json and failed_ids:
        raise click.UsageError("--json and --failed-ids print different things; choose one")
    try:
        if failed_ids:
            count = write_failed_ids(out_dir, sys.stdout)
            click.echo(f"{count} failed target(s) to retry", err=True)
            return
        report = collect_status(out_dir)
    except ExportError as exc:
        raise failure(str(exc), Redactor(), Console()) from None
    click.echo(json.dumps(report, indent=2) if as_json else format_status(report))


@click.command(context_settings=CONTEXT)
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--deep",
    is_flag=True,
    help="Object storage: download, re-hash and re-check every object (local files always are).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="PUB",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Ed25519 public key (signing.pub): every seal must be signed by it (repeat for several).",
)
@click.option(
    "--require-complete",
    is_flag=True,
    help="Also report every target that is not done (failed, invalid or pending).",
)
@access_options
def verify(
    out_dir: Path,
    as_json: bool,
    deep: bool,
    keys: tuple[Path, ...],
    require_complete: bool,
    s3_endpoint_url: str | None,
    s3_region: str | None,
    s3_profile: str | None,
) -> None:
    """Prove the archive in DIR: every export, the manifest, the seals, the journal.

    \b
    - every export against its manifest line: local files re-hashed and their
      JSON re-checked; objects in a bucket (DIR/destination.json) with one HEAD
      each (size, SHA-256, version, Object Lock), --deep reads them too;
    - files under exports/ that no manifest line names;
    - the manifest, summary and run log against the latest seal, the seal
      chain back to the first, the journal's hash chain, and with --key each
      seal's signature.

    Exit status 0 when all is proven, 1 when any problem is found (each
    listed on stdout), 2 when DIR is not an archive.

    \b
    Examples:
      batch-export verify exports/
      batch-export verify /archive/2026-11-01 --key signing.pub --json > evidence.json
      batch-export verify archive/ --require-complete
      batch-export verify state/ --deep --s3-endpoint-url http://127.0.0.1:8333
    """
    try:
        from ..evidence.signing import load_public_keys  # cryptography: only for verify

        trusted = load_public_keys(keys)
        settings = recorded_settings(
            out_dir, endpoint_url=s3_endpoint_url, region=s3_region, profile=s3_profile
        )
        sink = None if settings is None else store_sink(settings)
        report = verify_directory(
            out_dir, sink, deep=deep, keys=trusted, require_complete=require_complete
        )
    except ExportError as exc:
        raise failure(str(exc), Redactor(), Console()) from None
    if as_json:
        click.echo(json.dumps(report.to_json(out_dir), indent=2))
    else:
        for problem in report.problems:
            click.echo(problem.describe())
        for line in format_proof(report):
            click.echo(line, err=True)
    sys.exit(0 if report.ok else 1)
