"""The ``batch-export`` command line: parse, wire, print. No logic of its own.

Exit codes (documented in the README and tested):
  0  every target done          1  finished, but some targets failed or were invalid
  2  usage/configuration error, unreadable input, credentials rejected, the
     platform unreachable past --outage-timeout, the disk unwritable
  70 internal error (a bug in batch-export: please report it)
  130 stopped by SIGINT         143 stopped by SIGTERM
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from .._version import __version__
from ..errors import ConfigError, ExportError, InternalError, TargetError
from ..evidence.status import collect_status, format_status
from ..evidence.verify import verify_directory
from ..input.ids import TargetKind
from ..platform.client import ApiSettings, PlatformClient
from ..platform.limits import RateLimiter, RetryPolicy
from ..platform.listing import iter_collection_subprofile_ids, iter_database_profile_ids
from ..redaction import RedactingFilter, Redactor, Secret
from ..run.options import EXIT_CONFIG, EXIT_SIGINT, RunOptions, RunResult
from ..run.orchestrate import run_export
from ..run.progress import format_summary

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_ENV = "COPERNICA_ACCESS_TOKEN"  # noqa: S105 - the variable's name, not a token
INSTANT_RETRIES_ENV = "BATCH_EXPORT_INSTANT_RETRIES"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


class _Console:
    """How messages reach stderr: plain lines, or JSON log records for schedulers."""

    json = False
    log = logging.getLogger("batch_export.cli")


def say(level: int, message: str) -> None:
    """A message for the operator on stderr, in the chosen --log-format."""
    if _Console.json:
        _Console.log.log(level, message)
    elif level >= logging.WARNING:
        click.echo(f"batch-export: {logging.getLevelName(level).lower()}: {message}", err=True)
    else:
        click.echo(f"batch-export: {message}", err=True)


def setup_logging(verbose: int, quiet: bool, log_format: str, redactor: Redactor) -> None:
    """Logs go to stderr, scrubbed of secrets, as text or JSON lines."""
    _Console.json = log_format == "json"
    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(redactor))
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("batch-export: %(levelname)s: %(message)s"))
    root = logging.getLogger("batch_export")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # The operator's own messages (e.g. the end-of-run record) show unless -q.
    _Console.log.setLevel(logging.ERROR if quiet else min(level, logging.INFO))
    # aiohttp logs full URLs (with the token) at debug level: keep it out.
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def output_options(func: F) -> F:
    """-v/-q/--log-format, shared by the commands that log."""
    func = click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")(func)
    func = click.option(
        "-v", "--verbose", count=True, help="More detail on stderr (-vv for debug)."
    )(func)
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json: one JSON object per log line, for schedulers and log shippers.",
    )(func)


def api_options(func: F) -> F:
    """Where the platform is and how to authenticate, shared by run and ids."""
    options = [
        click.option(
            "--api-url",
            default="https://api.copernica.com",
            show_default=True,
            help="Base URL of the REST API.",
        ),
        click.option(
            "--api-version",
            type=click.IntRange(1, 4),
            default=2,
            show_default=True,
            help="REST API version (4 uses bearer JWTs).",
        ),
        click.option(
            "--auth-url",
            default="https://authenticate.copernica.com",
            show_default=True,
            help="Where v4 exchanges the token for a JWT.",
        ),
        click.option(
            "--token-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help=f"File holding the access token (else ${TOKEN_ENV}).",
        ),
        click.option(
            "--rate",
            type=float,
            help="Requests/second ceiling for this client (default: find the account's limit).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, option: str) -> str:
    """An http(s) URL with a host, or a BadParameter saying what is expected."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL with a host, e.g. https://api.copernica.com",
            param_hint=option,
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        say(
            logging.WARNING,
            f"{option} uses plain http to {parts.hostname}: the access token travels unencrypted",
        )
    return url


def read_token(token_file: Path | None) -> Secret:
    """The access token from --token-file or the environment, never from the command line."""
    if token_file is not None:
        try:
            value = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"--token-file {token_file} is empty")
        return Secret(value)
    value = os.environ.get(TOKEN_ENV, "").strip()
    if not value:
        raise ConfigError(
            f"no access token: set {TOKEN_ENV} or pass --token-file PATH (or try --simulate)"
        )
    return Secret(value)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="batch-export")
def cli() -> None:
    """Bulk export of Copernica GDPR data requests, resumable and verified.

    \b
    Example:
      export COPERNICA_ACCESS_TOKEN=...      # or --token-file
      batch-export run profiles.csv --out exports/
      batch-export run sample_inputs/profiles.csv --out demo/ --simulate
    """


@cli.command(context_settings=CONTEXT)
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
@click.option("--gzip", is_flag=True, help="Store exports gzip-compressed (.json.gz).")
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
    gzip: bool,
    insecure: bool,
    simulate: bool,
    as_json: bool,
    no_progress: bool,
    verbose: int,
    quiet: bool,
    log_format: str,
) -> None:
    """Export the data request of every target in INPUT.csv ('-' for stdin) into --out.

    Each export is streamed to its own verified file; DIR/manifest.jsonl lists
    every target's outcome and DIR/summary.json the run's totals. Rerunning
    the same command resumes: finished targets are skipped and open requests
    are picked up by their request ID.

    \b
    Examples:
      batch-export run sample_inputs/profiles.csv --out demo-export --simulate
      COPERNICA_ACCESS_TOKEN=... batch-export run ids.csv --out exports --rate 20
      batch-export run emails.csv --kind email --api-version 4 --out exports --token-file ~/.copernica
    """
    redactor = Redactor()
    setup_logging(verbose, quiet, log_format, redactor)
    try:
        if not simulate:
            check_url(api_url, "--api-url")
            if api_version == 4:
                check_url(auth_url, "--auth-url")
        if insecure:
            say(
                logging.WARNING,
                "--insecure: HTTPS certificates are NOT verified; "
                "anyone on the network path can read the token and the exports",
            )
        token = Secret("") if simulate else read_token(token_file)
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
            gzip=gzip,
            progress=not no_progress and not quiet and sys.stderr.isatty(),
            redactor=redactor,
            # Documented switch for test suites: retries without waiting.
            retry=RetryPolicy(instant=os.environ.get(INSTANT_RETRIES_ENV) == "1"),
        )
        options.validate()
        result = asyncio.run(_run(options, simulate, redactor))
    except ExportError as exc:
        raise _fail(str(exc), redactor, exc.exit_code) from None
    except KeyboardInterrupt:
        say(logging.WARNING, "interrupted")
        sys.exit(EXIT_SIGINT)
    except click.ClickException:
        raise
    except Exception as exc:
        raise _internal(exc, redactor) from None
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
    if _Console.json:
        _Console.log.info("run finished: %s", json.dumps(result.summary["counts"]))
    elif not quiet:
        click.echo(format_summary(result.summary), err=True)
        click.echo(f"manifest: {result.out_dir / 'manifest.jsonl'}", err=True)
    sys.exit(result.exit_code)


async def _run(options: RunOptions, simulate: bool, redactor: Redactor) -> RunResult:
    if not simulate:
        return await run_export(options)
    from ..simulator import Simulator, SimulatorConfig

    # The mixed wire: every documented and observed answer of the platform at
    # random (placeholders with and without info, request IDs in any header
    # or body, 429 and load-balancer 503/504 throttling, empty replies, auth
    # blips, short outages), so the demo shows the exporter coping with them.
    # Its limit (50 req/s, like a modest account) is unknown to the exporter,
    # which finds it; one short outage shows the gate at work.
    config = SimulatorConfig(
        prepare_delay="0.2:1.5",
        export_size=20_000,
        seed=7,
        wire="mixed",
        rate_limit=50,
        burst=10,
        outage_every=6.0,
        outage_seconds=1.0,
    )
    async with Simulator(config, host="127.0.0.1", port=0) as sim:
        say(
            logging.INFO,
            f"using the embedded simulator at {sim.base_url}",
        )
        redactor.add(sim.token)
        api = replace(
            options.api, api_url=sim.base_url, auth_url=sim.auth_url, token=Secret(sim.token)
        )
        options = replace(options, api=api)
        return await run_export(options)


class _UsageFailure(click.ClickException):
    exit_code = EXIT_CONFIG

    def show(self, file: Any = None) -> None:
        say(logging.ERROR, self.format_message())


class _InternalFailure(_UsageFailure):
    exit_code = InternalError.exit_code


def _fail(message: str, redactor: Redactor, exit_code: int = EXIT_CONFIG) -> click.ClickException:
    failure = _InternalFailure if exit_code == InternalError.exit_code else _UsageFailure
    return failure(redactor(message))


def _internal(exc: BaseException, redactor: Redactor) -> click.ClickException:
    """A bug escaped: one line to report (the traceback only with -v), exit 70."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    # Not the operator's logger (always at INFO): this one shows only with -v.
    logging.getLogger("batch_export.traceback").info("traceback:\n%s", redactor(trace))
    return _fail(
        f"internal error: {type(exc).__name__}: {exc} — please report it "
        "(rerun with -v for the traceback)",
        redactor,
        InternalError.exit_code,
    )


@cli.command(context_settings=CONTEXT)
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
        raise _UsageFailure(str(exc)) from None
    click.echo(json.dumps(report, indent=2) if as_json else format_status(report))


@cli.command(context_settings=CONTEXT)
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
        raise _UsageFailure(str(exc)) from None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "directory": str(out_dir),
                    "ok": report.ok,
                    "checked": report.checked,
                    "verified": report.verified,
                    "bytes": report.bytes,
                    "not_done": report.not_done,
                    "problems": [vars(p) for p in report.problems],
                },
                indent=2,
            )
        )
    else:
        for problem in report.problems:
            click.echo(f"{problem.file or '-'}: {problem.kind} {problem.id}: {problem.problem}")
        click.echo(
            f"verified {report.verified} of {report.checked} files ({report.bytes} bytes); "
            f"{len(report.problems)} problems; {report.not_done} entries not done",
            err=True,
        )
    sys.exit(0 if report.ok else 1)


@cli.command(context_settings=CONTEXT)
@click.option("--database", "database_id", help="List the profile IDs of this database.")
@click.option("--collection", "collection_id", help="List the subprofile IDs of this collection.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the CSV here (default: stdout).",
)
@api_options
@output_options
def ids(
    database_id: str | None,
    collection_id: str | None,
    output: Path | None,
    api_url: str,
    api_version: int,
    auth_url: str,
    token_file: Path | None,
    rate: float | None,
    verbose: int,
    quiet: bool,
    log_format: str,
) -> None:
    """Write every profile ID of a database (or subprofile ID of a collection) as a CSV.

    The CSV is what `batch-export run` reads, so a whole-account migration is
    ids → run → verify.

    \b
    Examples:
      batch-export ids --database 42 -o profiles.csv
      batch-export ids --collection 7 -o subprofiles.csv
      batch-export run subprofiles.csv --kind subprofile --out exports/
    """
    redactor = Redactor()
    setup_logging(verbose, quiet, log_format, redactor)
    if (database_id is None) == (collection_id is None):
        raise click.UsageError("give exactly one of --database ID or --collection ID")
    try:
        check_url(api_url, "--api-url")
        if rate is not None and rate <= 0:
            raise ConfigError("--rate must be greater than 0")
        token = read_token(token_file)
        redactor.add(token.reveal())
        settings = ApiSettings(
            api_url=api_url, api_version=api_version, auth_url=auth_url, token=token
        )
        header = "profile_id" if database_id is not None else "subprofile_id"
        count = asyncio.run(
            _write_ids(settings, rate, database_id, collection_id, output, header, redactor)
        )
    except ExportError as exc:
        raise _fail(str(exc), redactor, exc.exit_code) from None
    if not quiet:
        say(
            logging.INFO,
            f"{count} IDs written" + (f" to {output}" if output else ""),
        )


async def _write_ids(
    settings: ApiSettings,
    rate: float | None,
    database_id: str | None,
    collection_id: str | None,
    output: Path | None,
    header: str,
    redactor: Redactor,
) -> int:
    count = 0
    # A failed listing must not leave a plausible-looking partial CSV behind.
    partial = output.with_name(f".{output.name}.partial") if output else None
    handle = partial.open("w", encoding="utf-8", newline="") if partial else sys.stdout
    complete = False
    try:
        handle.write(header + "\n")
        async with PlatformClient(settings, RateLimiter(rate), redactor=redactor) as client:
            pages = (
                iter_database_profile_ids(client, database_id)
                if database_id is not None
                else iter_collection_subprofile_ids(client, str(collection_id))
            )
            async for page in pages:
                handle.write("".join(f"{value}\n" for value in page))
                count += len(page)
        complete = True
    except TargetError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        if partial is not None and output is not None:
            handle.close()
            if complete:
                partial.replace(output)
            else:
                partial.unlink(missing_ok=True)
    return count


def _register_optional_commands() -> None:
    """Commands living in their own modules, registered on the group."""
    from ..simulator.command import simulate

    cli.add_command(simulate)


_register_optional_commands()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="batch-export")
