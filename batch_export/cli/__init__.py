"""The ``batch-export`` command line: parse, wire, print. No logic of its own.

Each command lives in its own module (``run``, ``inspect`` for status and
verify, ``report``, ``keys`` for keygen, ``ids``; ``simulate`` comes from the simulator package); this one
holds the group and registers them.

Exit codes (documented in the README and tested):
  0  every target done          1  finished, but some targets failed or were invalid
  2  usage/configuration error, unreadable input, credentials rejected, the
     platform unreachable past --outage-timeout, the disk unwritable
  70 internal error (a bug in batch-export: please report it)
  130 stopped by SIGINT         143 stopped by SIGTERM
"""

from __future__ import annotations

import click

from .._version import __version__
from ..simulator.command import simulate
from .common import CONTEXT
from .ids import ids
from .inspect import status, verify
from .keys import keygen
from .report import report
from .run import run

__all__ = ["cli", "main"]


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


for _command in (run, status, verify, report, keygen, ids, simulate):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="batch-export")
