"""``batch-export ids``: the IDs of a database or collection, as the CSV ``run`` reads."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from ..errors import ExportError
from ..platform.client import PlatformClient
from ..platform.limits import RateLimiter, check_rate
from ..platform.listing import write_id_csv
from ..platform.settings import ApiSettings
from ..redaction import Redactor
from .common import CONTEXT, api_options, check_url, failure, output_options, read_token
from .console import Console

__all__ = ["ids"]


@click.command(context_settings=CONTEXT)
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
    console = Console.setup(verbose, quiet, log_format, redactor)
    if (database_id is None) == (collection_id is None):
        raise click.UsageError("give exactly one of --database ID or --collection ID")
    try:
        check_url(api_url, "--api-url", console)
        check_rate(rate)
        token = read_token(token_file)
        redactor.add(token.reveal())
        settings = ApiSettings(
            api_url=api_url, api_version=api_version, auth_url=auth_url, token=token
        )
        count = asyncio.run(
            _list(settings, rate, redactor, database_id, collection_id, output)
        )
    except ExportError as exc:
        raise failure(str(exc), redactor, console, exc.exit_code) from None
    console.say(logging.INFO, f"{count} IDs written" + (f" to {output}" if output else ""))


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
