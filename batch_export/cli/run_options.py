"""``batch-export run``'s options, in the sections its ``--help`` shows them in.

Twenty-odd options in one flat list hide the three that matter; cloup's
option groups give each concern its own titled section (input, platform,
pacing, output, object storage, push mode, logging). Only the layout of the
help lives here: every option keeps its name, default and meaning, and
``run`` receives them as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import cloup

from ..input.ids import TargetKind
from .common import LOG_OPTIONS, PLATFORM_OPTIONS, RATE_OPTION
from .storage import DESTINATION_OPTIONS

__all__ = ["HELP_LAYOUT", "SECTIONS", "run_options"]

F = TypeVar("F", bound=Callable[..., Any])

_INPUT = cloup.option_group(
    "Input",
    cloup.option(
        "--kind",
        type=click.Choice([k.value for k in TargetKind]),
        default="profile",
        show_default=True,
        help="What the IDs in the CSV are.",
    ),
    cloup.option(
        "--id-column",
        help="Column holding the IDs (default: profile_id, id, profile, subprofile_id or email).",
    ),
    cloup.option(
        "--encoding",
        default="utf-8",
        show_default=True,
        help="Text encoding of INPUT.csv, e.g. cp1252.",
    ),
)

_PLATFORM = cloup.option_group(
    "Platform",
    *PLATFORM_OPTIONS,
    cloup.option(
        "--insecure", is_flag=True, help="Do not verify HTTPS certificates (test platforms only!)."
    ),
    cloup.option(
        "--simulate", is_flag=True, help="Run against the embedded simulator (no account needed)."
    ),
)

_PACING = cloup.option_group(
    "Pacing",
    RATE_OPTION,
    cloup.option(
        "--concurrency", type=int, default=16, show_default=True, help="HTTP requests in flight."
    ),
    cloup.option(
        "--max-pending",
        type=int,
        default=500,
        show_default=True,
        help="Data requests submitted but not yet downloaded.",
    ),
    cloup.option(
        "--timeout",
        type=float,
        default=3600.0,
        show_default=True,
        help="Seconds one data request may take before it is given up.",
    ),
    cloup.option(
        "--stall-timeout",
        type=float,
        default=900.0,
        show_default=True,
        help="Stop the run (resumably) when nothing at all has happened for this many seconds.",
    ),
    cloup.option(
        "--outage-timeout",
        type=float,
        default=900.0,
        show_default=True,
        help="Seconds to wait out an unreachable platform (every request held, one probe at a "
        "time) before the run stops resumably.",
    ),
)

_OUTPUT = cloup.option_group(
    "Output",
    cloup.option(
        "--out",
        "out_dir",
        required=True,
        type=click.Path(path_type=Path),
        help="Output directory (created 0700; rerun with the same one to resume).",
    ),
    cloup.option("--gzip", is_flag=True, help="Store exports gzip-compressed (.json.gz)."),
    cloup.option(
        "--sign-key",
        metavar="FILE",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Sign each run's seal with this Ed25519 private key (from batch-export keygen).",
    ),
    cloup.option(
        "--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout."
    ),
)

_STORAGE = cloup.option_group(
    "Object storage",
    *DESTINATION_OPTIONS,
    help="Needs pip install 'batch-export[s3]'; credentials come from the standard AWS chain.",
)

_PUSH = cloup.option_group(
    "Push mode",
    cloup.option(
        "--report",
        help="Passed to the platform: an email or web address to notify when a file is ready.",
    ),
    cloup.option(
        "--push-listen",
        metavar="HOST:PORT",
        help="Receive finished exports on this address instead of polling for them.",
    ),
    cloup.option(
        "--push-url",
        metavar="URL",
        help="Public URL of --push-listen for the platform (default: http://HOST:PORT).",
    ),
    cloup.option(
        "--push-grace",
        type=float,
        default=60.0,
        show_default=True,
        help="Seconds to wait for a delivery before polling for it.",
    ),
    cloup.option(
        "--account-id",
        metavar="ID",
        help="Refuse signed deliveries whose X-Copernica-ID is not account_ID.",
    ),
    cloup.option(
        "--push-require-signature",
        is_flag=True,
        help="Refuse deliveries the platform did not sign (they are polled for instead).",
    ),
    cloup.option(
        "--push-dns-server",
        metavar="HOST[:PORT]",
        help="The DNS server to ask for the platform's DKIM signing key "
        "(default: the system resolver).",
    ),
)

_LOGGING = cloup.option_group(
    "Logging",
    cloup.option(
        "--no-progress",
        is_flag=True,
        help="No progress bars (they are off anyway when stderr is not a terminal).",
    ),
    *LOG_OPTIONS,
    cloup.option(
        "--stats-interval",
        type=float,
        metavar="SECONDS",
        help="A progress line in the log every SECONDS; 0 = off (default: 60 when stderr is "
        "not a terminal, else 0).",
    ),
    cloup.option(
        "--metrics-file",
        metavar="PATH",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Keep a Prometheus text file here (node exporter's textfile collector), "
        "rewritten during the run and at its end.",
    ),
)

#: the section titles of ``run --help``, in order (tests check they are all shown)
SECTIONS = (
    "Input",
    "Platform",
    "Pacing",
    "Output",
    "Object storage",
    "Push mode",
    "Logging",
)

#: how the sections are laid out: a narrower first column than cloup's 30 leaves
#: the help text room in an 80-column terminal; longer option names get a line
#: of their own
HELP_LAYOUT = cloup.HelpFormatter.settings(col1_max_width=26)

_GROUPS = (_INPUT, _PLATFORM, _PACING, _OUTPUT, _STORAGE, _PUSH, _LOGGING)


def run_options(func: F) -> F:
    """Every option of ``run``, grouped into the sections of ``SECTIONS``."""
    for group in reversed(_GROUPS):
        func = group(func)
    return func
