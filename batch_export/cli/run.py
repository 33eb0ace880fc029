"""``batch-export run``: parse the options, build a ``RunOptions``, run, print the summary.

With ``--simulate`` the run goes against the embedded simulator playing its
"mixed wire" (every answer the platform's docs and field reports describe).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ..errors import ExportError
from ..input.ids import TargetKind
from ..platform.limits import RetryPolicy
from ..platform.settings import ApiSettings
from ..redaction import Redactor, Secret
from ..run.options import EXIT_SIGINT, RunOptions, RunResult
from ..run.orchestrate import run_export
from ..run.progress import format_summary
from .common import (
    CONTEXT,
    INSTANT_RETRIES_ENV,
    api_options,
    check_url,
    failure,
    internal_failure,
    output_options,
    read_token,
)
from .console import Console
from .storage import destination_from, destination_options

__all__ = ["run"]


@click.command(context_settings=CONTEXT)
@click.argument("input_csv", metavar="INPUT.csv", type=str)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output directory (created 0700; rerun with the same one to resume).",
)
@click.option(
    "--kind",
    type=click.Choice([k.value for k in TargetKind]),
    default="profile",
    show_default=True,
    help="What the IDs in the CSV are.",
)
@click.option(
    "--id-column",
    help="Column holding the IDs (default: profile_id, id, profile, subprofile_id or email).",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="Text encoding of INPUT.csv, e.g. cp1252.",
)
@api_options
@click.option(
    "--concurrency", type=int, default=16, show_default=True, help="HTTP requests in flight."
)
@click.option(
    "--max-pending",
    type=int,
    default=500,
    show_default=True,
    help="Data requests submitted but not yet downloaded.",
)
@click.option(
    "--timeout",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds one data request may take before it is given up.",
)
@click.option(
    "--stall-timeout",
    type=float,
    default=900.0,
    show_default=True,
    help="Stop the run (resumably) when nothing at all has happened for this many seconds.",
)
@click.option(
    "--outage-timeout",
    type=float,
    default=900.0,
    show_default=True,
    help="Seconds to wait out an unreachable platform (every request held, one probe at a time) "
    "before the run stops resumably.",
)
@click.option(
    "--report",
    help="Passed to the platform: an email or web address to notify when a file is ready.",
)
@click.option(
    "--push-listen",
    metavar="HOST:PORT",
    help="Push mode: receive finished exports on this address instead of polling for them.",
)
@click.option(
    "--push-url",
    metavar="URL",
    help="Push mode: the URL under which the platform reaches --push-listen (default http://HOST:PORT).",
)
@click.option(
    "--push-grace",
    type=float,
    default=60.0,
    show_default=True,
    help="Push mode: seconds to wait for a delivery before polling for it.",
)
@click.option(
    "--account-id",
    metavar="ID",
    help="Push mode: refuse signed deliveries whose X-Copernica-ID is not account_ID.",
)
@click.option(
    "--push-require-signature",
    is_flag=True,
    help="Push mode: refuse deliveries the platform did not sign (they are polled for instead).",
)
@click.option(
    "--push-dns-server",
    metavar="HOST[:PORT]",
    help="Push mode: the DNS server to ask for the platform's DKIM signing key "
    "(default: the system resolver).",
)
@click.option("--gzip", is_flag=True, help="Store exports gzip-compressed (.json.gz).")
@click.option(
    "--sign-key",
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Sign each run's seal with this Ed25519 private key (from batch-export keygen).",
)
@destination_options
@click.option(
    "--insecure", is_flag=True, help="Do not verify HTTPS certificates (test platforms only!)."
)
@click.option(
    "--simulate", is_flag=True, help="Run against the embedded simulator (no account needed)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bars (they are off anyway when stderr is not a terminal).",
)
@output_options
def run(
    input_csv: str,
    out_dir: Path,
    kind: str,
    id_column: str | None,
    encoding: str,
    api_url: str,
    api_version: int,
    auth_url: str,
    token_file: Path | None,
    rate: float | None,
    concurrency: int,
    max_pending: int,
    timeout: float,
    stall_timeout: float,
    outage_timeout: float,
    report: str | None,
    push_listen: str | None,
    push_url: str | None,
    push_grace: float,
    account_id: str | None,
    push_require_signature: bool,
    push_dns_server: str | None,
    gzip: bool,
    sign_key: Path | None,
    insecure: bool,
    simulate: bool,
    as_json: bool,
    no_progress: bool,
    verbose: int,
    quiet: bool,
    log_format: str,
    **destination: Any,
) -> None:
    """Export the data request of every target in INPUT.csv ('-' for stdin) into --out.

    Each export is streamed to its own verified file (with --to, to its own
    object in an S3-compatible bucket, --out keeping the state); DIR/manifest.jsonl lists
    every target's outcome and DIR/summary.json the run's totals. Rerunning
    the same command resumes: finished targets are skipped and open requests
    are picked up by their request ID.

    \b
    Examples:
      batch-export run sample_inputs/profiles.csv --out demo-export --simulate
      COPERNICA_ACCESS_TOKEN=... batch-export run ids.csv --out exports --rate 20
      batch-export run emails.csv --kind email --api-version 4 --out exports --token-file ~/.copernica
      batch-export run ids.csv --out state --to s3://archive/2026-12 --retention-days 2555
    """
    redactor = Redactor()
    console = Console.setup(verbose, quiet, log_format, redactor)
    try:
        token = _check_platform(simulate, api_url, api_version, auth_url, insecure, token_file, console)
        redactor.add(token.reveal())
        options = RunOptions(
            input=input_csv,
            out_dir=out_dir,
            api=ApiSettings(
                api_url=api_url,
                api_version=api_version,
                auth_url=auth_url,
                token=token,
                insecure=insecure,
                outage_timeout=outage_timeout,
            ),
            kind=TargetKind(kind),
            id_column=id_column,
            encoding=encoding,
            rate=rate,
            concurrency=concurrency,
            max_pending=max_pending,
            timeout=timeout,
            stall_timeout=stall_timeout,
            report=report,
            push_listen=push_listen,
            push_public_url=push_url,
            push_grace=push_grace,
            account_id=account_id,
            push_require_signature=push_require_signature,
            push_dns_server=push_dns_server,
            gzip=gzip,
            progress=not no_progress and not quiet and sys.stderr.isatty(),
            redactor=redactor,
            retry=RetryPolicy(instant=os.environ.get(INSTANT_RETRIES_ENV) == "1"),
            destination=destination_from(**destination),
            sign_key=sign_key,
        )
        result = asyncio.run(_run(options, simulate, redactor, console))
    except ExportError as exc:
        raise failure(str(exc), redactor, console, exc.exit_code) from None
    except KeyboardInterrupt:
        console.say(logging.WARNING, "interrupted")
        sys.exit(EXIT_SIGINT)
    except click.ClickException:
        raise
    except Exception as exc:
        raise internal_failure(exc, redactor, console) from None
    _print_result(result, as_json, console)
    sys.exit(result.exit_code)


def _check_platform(
    simulate: bool,
    api_url: str,
    api_version: int,
    auth_url: str,
    insecure: bool,
    token_file: Path | None,
    console: Console,
) -> Secret:
    """The URLs checked and the token read (none needed with --simulate)."""
    if not simulate:
        check_url(api_url, "--api-url", console)
        if api_version == 4:
            check_url(auth_url, "--auth-url", console)
    if insecure:
        console.say(
            logging.WARNING,
            "--insecure: HTTPS certificates are NOT verified; "
            "anyone on the network path can read the token and the exports",
        )
    return Secret("") if simulate else read_token(token_file)


def _print_result(result: RunResult, as_json: bool, console: Console) -> None:
    """The summary: JSON on stdout with --json; the text summary on stderr (not -q, not JSON logs).

    The end-of-run record is the run's own ``run_finished``/``run_stopped``
    event (``run/events.py``), logged once, with the counts, exit code and
    interruption as JSON members: a second record here would say it twice.
    """
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
    if not console.as_json and not console.quiet:
        click.echo(format_summary(result.summary), err=True)
        click.echo(f"manifest: {result.out_dir / 'manifest.jsonl'}", err=True)
        destination = result.summary.get("destination")
        if isinstance(destination, dict) and destination.get("url"):
            click.echo(f"exports: {destination['url']}", err=True)


async def _run(
    options: RunOptions, simulate: bool, redactor: Redactor, console: Console
) -> RunResult:
    if not simulate:
        return await run_export(options)
    from ..simulator import Simulator
    from ..simulator.demo import demo_config

    async with Simulator(demo_config(), host="127.0.0.1", port=0) as sim:
        console.say(
            logging.INFO,
            f"using the embedded simulator at {sim.base_url}",
        )
        redactor.add(sim.token)
        api = replace(
            options.api, api_url=sim.base_url, auth_url=sim.auth_url, token=Secret(sim.token)
        )
        # The simulator's signing key is published nowhere: trust it as given, not via DNS.
        options = replace(options, api=api, push_dkim_records=sim.dkim_records())
        return await run_export(options)
