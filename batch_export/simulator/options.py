"""The ``simulate`` command's options, in bundles applied in the order --help lists them.

Each bundle is a decorator adding one group of options; stacked in the order
command.py stacks them they give the options (and --help) their order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .config import (
    AUTH_FAULT_KINDS,
    DEFAULT_AUTH_FAULT_KINDS,
    DEFAULT_FAULT_KINDS,
    DEFAULT_TOKEN,
    FAULT_KINDS,
    JUNK_FOREVER,
    LIMIT_SHAPES,
    MIXED_GROUPS,
    MIXED_RATES,
    PLACEHOLDER_WORDINGS,
    REQUEST_ID_PLACES,
    REQUEST_ID_STYLES,
    THROTTLE_STYLES,
    WIRES,
)
from .option_values import (
    check_auth_fault_kinds,
    check_delay,
    check_fault_kinds,
    check_ids,
    check_mixed_exclude,
    check_outage_every,
    check_size,
)

__all__ = [
    "auth_fault_options",
    "export_options",
    "fault_options",
    "limit_options",
    "outage_options",
    "output_options",
    "server_options",
    "target_options",
    "wire_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def _stack(func: F, *options: Callable[[Any], Any]) -> F:
    """Apply `options` so that they appear in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def server_options(func: F) -> F:
    """Where it listens and who it is: --host, --port, --token, --seed."""
    return _stack(
        func,
        click.option(
            "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
        ),
        click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=8787,
            show_default=True,
            help="Port to listen on (0 = any free port).",
        ),
        click.option(
            "--token", default=DEFAULT_TOKEN, show_default=True, help="The valid access token."
        ),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed for all randomness."
        ),
    )


def limit_options(func: F) -> F:
    """The rate limit and its refusals: --rate-limit, --burst, --retry-after-date, --throttle-style."""
    return _stack(
        func,
        click.option(
            "--rate-limit",
            type=click.FloatRange(min=0),
            default=0.0,
            help="Requests/second per access token (0 = unlimited).",
        ),
        click.option(
            "--burst",
            type=click.IntRange(min=1),
            default=20,
            show_default=True,
            help="Bucket size.",
        ),
        click.option(
            "--limit-shape",
            type=click.Choice(LIMIT_SHAPES),
            default="bucket",
            show_default=True,
            help="How --rate-limit counts: a token bucket (with --burst), at most that many "
            "requests in each calendar second, or in any one second.",
        ),
        click.option(
            "--retry-after-date",
            is_flag=True,
            help="Send 429 Retry-After as an HTTP date (the same as --throttle-style 429-date).",
        ),
        click.option(
            "--throttle-style",
            type=click.Choice(THROTTLE_STYLES),
            default="429",
            show_default=True,
            help="How a rate-limit refusal looks: 429 with Retry-After seconds, with an HTTP date, "
            "without Retry-After, or a 503/504 'Loadbalancer Error' HTML page.",
        ),
    )


def export_options(func: F) -> F:
    """Exports and JWTs: --prepare-delay, --export-size, --expire-after, --forget-rate, --jwt-lifetime."""
    return _stack(
        func,
        click.option(
            "--prepare-delay",
            default="0.5:3",
            show_default=True,
            callback=check_delay,
            help="Seconds until a file is ready: S, LO:HI, or longtail:LO:HI:P:FACTOR.",
        ),
        click.option(
            "--export-size",
            default="20k",
            show_default=True,
            callback=check_size,
            help="Exact size of each export: bytes or with k/m/g (decimal), e.g. 512, 20k, 1g.",
        ),
        click.option(
            "--expire-after",
            type=click.FloatRange(min=0),
            default=600.0,
            show_default=True,
            help="Seconds a ready file stays available (0 = never expires).",
        ),
        click.option(
            "--forget-rate",
            type=click.FloatRange(0, 1),
            default=0.0,
            show_default=True,
            help="Fraction of data requests the platform loses at a random moment before they "
            "are ready (their GETs then answer as for an unknown ID).",
        ),
        click.option(
            "--jwt-lifetime",
            type=click.FloatRange(min=0, min_open=True),
            default=86400.0,
            show_default=True,
            help="Seconds a v4 JWT is valid.",
        ),
    )


def fault_options(func: F) -> F:
    """Datarequest faults: --fault-rate, --fault-kinds, --slow-seconds."""
    return _stack(
        func,
        click.option(
            "--fault-rate",
            type=click.FloatRange(0, 1),
            default=0.0,
            show_default=True,
            help="Probability of a fault per datarequest call.",
        ),
        click.option(
            "--fault-kinds",
            default=",".join(DEFAULT_FAULT_KINDS),
            show_default=True,
            callback=check_fault_kinds,
            help=f"Which faults to inject (the rate is split evenly); accepted: {','.join(FAULT_KINDS)}.",
        ),
        click.option(
            "--slow-seconds",
            type=click.FloatRange(min=0),
            default=2.0,
            show_default=True,
            help="How long a 'slow' fault waits before answering, and a 'stall' halfway through a body.",
        ),
    )


def target_options(func: F) -> F:
    """The targets and listings.

    --missing-ids, --id-as-string, --database, --collection, --wrap-id-lists, --behaviour,
    --redirect-to.
    """
    return _stack(
        func,
        click.option(
            "--missing-ids",
            callback=check_ids,
            help="Profile/subprofile IDs that answer 404, e.g. 5,6,7.",
        ),
        click.option("--id-as-string", is_flag=True, help="Emit info.id as a JSON string."),
        click.option(
            "--database",
            "databases",
            multiple=True,
            metavar="ID=COUNT",
            help="A database (repeatable; replaces the demo database 42=100).",
        ),
        click.option(
            "--collection",
            "collections",
            multiple=True,
            metavar="ID=COUNT",
            help="A collection of subprofiles (repeatable; replaces the demo collection 7=40).",
        ),
        click.option(
            "--wrap-id-lists", is_flag=True, help="Wrap paged ID lists as {start,limit,...}."
        ),
        click.option(
            "--behaviour",
            "behaviours",
            multiple=True,
            metavar="ID=NAME",
            help="A hostile behaviour for one target, e.g. 42=not-json (repeatable).",
        ),
        click.option(
            "--redirect-to", metavar="URL", help="Answer every /v{N}/ call with 301 to URL."
        ),
    )


def wire_options(func: F) -> F:
    """The wire and its fixed variants.

    --wire, --request-id-style, --placeholder-info, --placeholder-wording, --post-status,
    --request-id-in, --trickle-seconds, --junk-times, --sign-reports, --account-id.
    """
    return _stack(
        func,
        click.option(
            "--wire",
            type=click.Choice(WIRES),
            default="classic",
            show_default=True,
            help="classic: the fixed variants below; mixed: every response draws one of the "
            "documented and observed variants at random (seeded).",
        ),
        click.option(
            "--request-id-style",
            type=click.Choice(REQUEST_ID_STYLES),
            default="numeric",
            show_default=True,
            help="New request IDs: decimal numbers, or odd 'dr_...' strings.",
        ),
        click.option(
            "--placeholder-info",
            is_flag=True,
            help='The not-ready answer carries "info" beside its "data" text.',
        ),
        click.option(
            "--placeholder-wording",
            type=click.Choice(PLACEHOLDER_WORDINGS),
            default=None,
            help="The not-ready text [default: v1 'no data available (yet).', "
            "v2-v4 'Data not available (yet)'].",
        ),
        click.option(
            "--post-status",
            type=click.Choice(["201", "200"]),
            default="201",
            show_default=True,
            help="Status of a successful POST datarequest.",
        ),
        click.option(
            "--request-id-in",
            type=click.Choice(REQUEST_ID_PLACES),
            default="x-created",
            show_default=True,
            help="Where a POST gives the new request ID: X-Created (+ X-location), only X-location, "
            'only Location, a JSON body {"id": ...}, or a plain-text body.',
        ),
        click.option(
            "--trickle-seconds",
            type=click.FloatRange(min=0, min_open=True),
            default=2.0,
            show_default=True,
            help="Seconds between the bytes of a 'trickle' target's export.",
        ),
        click.option(
            "--junk-times",
            type=click.IntRange(min=JUNK_FOREVER),
            default=2,
            show_default=True,
            help=f"GETs of a junk-* target's ready export that get junk first ({JUNK_FOREVER} = forever).",
        ),
        click.option(
            "--sign-reports",
            is_flag=True,
            help="Sign report POSTs like the platform's outgoing requests (Digest, X-Copernica-ID, "
            "Signature); the key's DKIM record is at GET /_sim/dkim.",
        ),
        click.option(
            "--account-id",
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            help="The account signed report POSTs name in X-Copernica-ID (account_ID).",
        ),
    )


def auth_fault_options(func: F) -> F:
    """The authenticate blips: --auth-fault-rate, --auth-fault-kinds, --auth-faults-first."""
    return _stack(
        func,
        click.option(
            "--auth-fault-rate",
            type=click.FloatRange(0, 1),
            default=0.0,
            show_default=True,
            help="Probability of a blip per POST /authenticate.",
        ),
        click.option(
            "--auth-fault-kinds",
            default=",".join(DEFAULT_AUTH_FAULT_KINDS),
            show_default=True,
            callback=check_auth_fault_kinds,
            help=f"Which authenticate blips to play; accepted: {','.join(AUTH_FAULT_KINDS)}.",
        ),
        click.option(
            "--auth-faults-first",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="The first N authenticate calls after the first successful one fail.",
        ),
    )


def outage_options(func: F) -> F:
    """Outages and the mixed wire: --outage-every, --outage-seconds, --mixed-exclude, --mixed-rate."""
    return _stack(
        func,
        click.option(
            "--outage-every",
            default="auto",
            show_default=True,
            callback=check_outage_every,
            help="Seconds between outages (the port refuses connections); 'auto' = none in the "
            "classic wire, every 20-40 s in the mixed one; 'never' = none.",
        ),
        click.option(
            "--outage-seconds",
            type=click.FloatRange(min=0, min_open=True),
            default=2.0,
            show_default=True,
            help="How long an outage lasts (x0.5..1.5 in the mixed wire).",
        ),
        click.option(
            "--mixed-exclude",
            default="",
            callback=check_mixed_exclude,
            help=f"Variant groups the mixed wire leaves alone; accepted: {','.join(MIXED_GROUPS)}.",
        ),
        click.option(
            "--mixed-rate",
            "mixed_rates",
            multiple=True,
            metavar="NAME=P",
            help=f"Override a mixed-wire probability ({','.join(MIXED_RATES)}), e.g. junk=0.1.",
        ),
    )


def output_options(func: F) -> F:
    """What stdout carries: --json."""
    return _stack(
        func,
        click.option("--json", "as_json", is_flag=True, help="Print one JSON line with the URLs."),
    )
