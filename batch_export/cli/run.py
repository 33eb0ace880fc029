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
import cloup

from ..errors import ExportError
from ..input.ids import TargetKind
from ..platform.limits import RetryPolicy
from ..platform.settings import DEFAULT_API_URL, DEFAULT_AUTH_URL, ApiSettings
from ..redaction import Redactor, Secret
from ..run.options import EXIT_SIGINT, RunOptions, RunResult
from ..run.orchestrate import run_export
from ..run.progress import format_summary
from ..run.simulated import run_simulated
from .common import (
    CONTEXT,
    INSTANT_RETRIES_ENV,
    auth_url_named,
    check_url,
    failure,
    internal_failure,
    read_token,
)
from .console import Console
from .run_options import HELP_LAYOUT, run_options
from .storage import destination_from

__all__ = ["run"]


@cloup.command(context_settings=CONTEXT, formatter_settings=HELP_LAYOUT)
@cloup.argument("input_csv", metavar="INPUT.csv", type=str)
@run_options
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
    stats_interval: float | None,
    metrics_file: Path | None,
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
      batch-export run emails.csv --kind email --api-version 4 --out exports \\
          --token-file ~/.copernica
      batch-export run ids.csv --out state --to s3://archive/2026-12 \\
          --retention-days 2555
    """
    redactor = Redactor()
    console = Console.setup(verbose, quiet, log_format, redactor)
    if simulate:
        # The simulator's own URLs replace these: a platform named in the
        # environment (COPERNICA_API_URL, …) must not stop the demo.
        api_url, auth_url = DEFAULT_API_URL, DEFAULT_AUTH_URL
    try:
        token = _check_platform(
            simulate, api_url, api_version, auth_url, insecure, token_file, console
        )
        redactor.add(token.reveal())
        options = RunOptions(
            input=input_csv,
            out_dir=out_dir,
            api=ApiSettings(
                api_url=api_url,
                api_version=api_version,
                auth_url=auth_url,
                auth_url_named=auth_url_named(click.get_current_context()),
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
            stats_interval=_stats_interval(stats_interval),
            metrics_file=metrics_file,
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


def _stats_interval(given: float | None) -> float:
    """--stats-interval, or its default: a line a minute under a scheduler, none at a terminal.

    At a terminal the progress bars already say it all; without one, nothing
    would be logged until the run ends.
    """
    if given is not None:
        return given
    return 0.0 if sys.stderr.isatty() else 60.0


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
    # run_simulated adds the simulator's token to the options' redactor: make sure it is ours
    return await run_simulated(
        replace(options, redactor=redactor),
        announce=lambda message: console.say(logging.INFO, message),
    )
