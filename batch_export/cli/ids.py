"""``batch-export ids``: the IDs of a database or collection, as the CSV ``run`` reads."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import replace
from pathlib import Path

import click
import cloup

from ..errors import ExportError
from ..platform.client import PlatformClient
from ..platform.limits import RateLimiter, check_rate
from ..platform.listing import write_id_csv
from ..platform.settings import DEFAULT_API_URL, DEFAULT_AUTH_URL, ApiSettings
from ..redaction import Redactor, Secret
from .common import (
    CONTEXT,
    LOG_OPTIONS,
    PLATFORM_OPTIONS,
    RATE_OPTION,
    auth_url_named,
    check_url,
    failure,
    read_token,
)
from .console import Console

__all__ = ["ids"]


@cloup.command(context_settings=CONTEXT)
@cloup.option_group(
    "What to list",
    cloup.option("--database", "database_id", help="List the profile IDs of this database."),
    cloup.option(
        "--collection", "collection_id", help="List the subprofile IDs of this collection."
    ),
    cloup.option(
        "--output",
        "-o",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Write the CSV here (default: stdout).",
    ),
)
@cloup.option_group(
    "Platform",
    *PLATFORM_OPTIONS,
    RATE_OPTION,
    cloup.option(
        "--simulate",
        is_flag=True,
        help="List the embedded simulator's demo database 42 or collection 7 (no account needed).",
    ),
)
@cloup.option_group("Logging", *LOG_OPTIONS)
def ids(
    database_id: str | None,
    collection_id: str | None,
    output: Path | None,
    api_url: str,
    api_version: int,
    auth_url: str,
    token_file: Path | None,
    rate: float | None,
    simulate: bool,
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
      batch-export ids --database 42 -o profiles.csv --simulate
    """
    redactor = Redactor()
    console = Console.setup(verbose, quiet, log_format, redactor)
    if (database_id is None) == (collection_id is None):
        raise click.UsageError("give exactly one of --database ID or --collection ID")
    if simulate:
        # The simulator's own URLs replace these: a platform named in the
        # environment (COPERNICA_API_URL, …) must not stop the demo.
        api_url, auth_url = DEFAULT_API_URL, DEFAULT_AUTH_URL
    try:
        check_rate(rate)
        if not simulate:
            check_url(api_url, "--api-url", console)
            if api_version == 4:
                check_url(auth_url, "--auth-url", console)
        token = Secret("") if simulate else read_token(token_file)
        redactor.add(token.reveal())
        settings = ApiSettings(
            api_url=api_url,
            api_version=api_version,
            auth_url=auth_url,
            auth_url_named=auth_url_named(click.get_current_context()),
            token=token,
        )
        count = asyncio.run(
            _list_from(
                settings, simulate, console, rate, redactor, database_id, collection_id, output
            )
        )
    except ExportError as exc:
        raise failure(str(exc), redactor, console, exc.exit_code) from None
    console.say(logging.INFO, f"{count} IDs written" + (f" to {output}" if output else ""))


async def _list_from(
    settings: ApiSettings,
    simulate: bool,
    console: Console,
    rate: float | None,
    redactor: Redactor,
    database_id: str | None,
    collection_id: str | None,
    output: Path | None,
) -> int:
    """The listing, from the platform or (--simulate) from an embedded simulator started for it."""
    if not simulate:
        return await _list(settings, rate, redactor, database_id, collection_id, output)
    from ..simulator import Simulator
    from ..simulator.demo import demo_config

    # The same world as `run --simulate`, so the IDs listed here are the ones it exports.
    async with Simulator(demo_config(), host="127.0.0.1", port=0) as sim:
        console.say(logging.INFO, f"using the embedded simulator at {sim.base_url}")
        redactor.add(sim.token)
        settings = replace(
            settings, api_url=sim.base_url, auth_url=sim.auth_url, token=Secret(sim.token)
        )
        return await _list(settings, rate, redactor, database_id, collection_id, output)


async def _list(
    settings: ApiSettings,
    rate: float | None,
    redactor: Redactor,
    database_id: str | None,
    collection_id: str | None,
    output: Path | None,
) -> int:
    async with PlatformClient(settings, RateLimiter(rate), redactor=redactor) as client:
        return await write_id_csv(
            client,
            database_id=database_id,
            collection_id=collection_id,
            output=output,
            stdout=sys.stdout,
        )
