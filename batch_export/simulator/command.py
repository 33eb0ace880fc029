"""The ``batch-export simulate`` command: parse options, build a config, serve.

The CLI only parses, wires and prints; the behaviour lives in the other
modules. stdout carries data (the base URL, or one JSON line with --json);
nothing else is printed there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Literal

import click

from .config import (
    AUTH_FAULT_KINDS,
    DEFAULT_AUTH_FAULT_KINDS,
    DEFAULT_FAULT_KINDS,
    DEFAULT_TOKEN,
    FAULT_KINDS,
    JUNK_FOREVER,
    MIXED_GROUPS,
    MIXED_RATES,
    PLACEHOLDER_WORDINGS,
    REQUEST_ID_PLACES,
    REQUEST_ID_STYLES,
    THROTTLE_STYLES,
    WIRES,
    SimulatorConfig,
    parse_delay,
    parse_size,
)
from .server import run_forever

__all__ = ["main", "simulate"]


def _pairs(values: Sequence[str], option: str, what: str) -> dict[str, int]:
    """Parse repeated ID=COUNT options."""
    result: dict[str, int] = {}
    for value in values:
        key, sep, count = value.partition("=")
        if not sep or not key.strip() or not count.strip().isdigit():
            raise click.BadParameter(
                f"{value!r}: accepted: ID=COUNT, e.g. 1=2500 ({what})", param_hint=option
            )
        result[key.strip()] = int(count)
    return result


def _delay(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_delay(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _subset(value: str, accepted: Sequence[str], *, allow_empty: bool = False) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    bad = [k for k in kinds if k not in accepted]
    if bad or (not kinds and not allow_empty):
        raise click.BadParameter(
            f"{value!r}: accepted: a comma-separated subset of {','.join(accepted)}"
        )
    return kinds


def _fault_kinds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return _subset(value, FAULT_KINDS)


def _auth_fault_kinds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return _subset(value, AUTH_FAULT_KINDS)


def _mixed_exclude(ctx: click.Context, param: click.Parameter, value: str) -> frozenset[str]:
    return frozenset(_subset(value, MIXED_GROUPS, allow_empty=True))


_OUTAGE_EVERY_HELP = "accepted: 'auto', 'never' (or 0), or seconds > 0"


def _outage_every(
    ctx: click.Context, param: click.Parameter, value: str
) -> float | Literal["auto"] | None:
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if text in ("never", "none", "0"):
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: {_OUTAGE_EVERY_HELP}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise click.BadParameter(f"{value!r}: {_OUTAGE_EVERY_HELP}")
    return seconds


def _mixed_rates(values: Sequence[str]) -> dict[str, float]:
    result: dict[str, float] = {}
    for value in values:
        name, sep, rate = value.partition("=")
        try:
            number = float(rate)
        except ValueError:
            number = math.nan
        if not sep or name.strip() not in MIXED_RATES or not 0.0 <= number <= 1.0:
            raise click.BadParameter(
                f"{value!r}: accepted: NAME=P with NAME one of {','.join(MIXED_RATES)} "
                "and P a probability 0..1, e.g. junk=0.1",
                param_hint="--mixed-rate",
            )
        result[name.strip()] = number
    return result


def _ids(ctx: click.Context, param: click.Parameter, value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    ids = [i.strip() for i in value.split(",") if i.strip()]
    if not all(i.isdigit() for i in ids):
        raise click.BadParameter(f"{value!r}: accepted: comma-separated numeric IDs, e.g. 5,6,7")
    return frozenset(ids)


def _behaviours(values: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        key, sep, name = value.partition("=")
        if not sep or not key or not name:
            raise click.BadParameter(
                f"{value!r}: accepted: TARGET_ID=BEHAVIOUR, e.g. 42=not-json",
                param_hint="--behaviour",
            )
        result[key.strip()] = name.strip()
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port to listen on (0 = any free port).",
)
@click.option("--token", default=DEFAULT_TOKEN, show_default=True, help="The valid access token.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for all randomness.")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Requests/second per access token (0 = unlimited).",
)
@click.option(
    "--burst", type=click.IntRange(min=1), default=20, show_default=True, help="Bucket size."
)
@click.option(
    "--retry-after-date",
    is_flag=True,
    help="Send 429 Retry-After as an HTTP date (the same as --throttle-style 429-date).",
)
@click.option(
    "--throttle-style",
    type=click.Choice(THROTTLE_STYLES),
    default="429",
    show_default=True,
    help="How a rate-limit refusal looks: 429 with Retry-After seconds, with an HTTP date, "
    "without Retry-After, or a 503/504 'Loadbalancer Error' HTML page.",
)
@click.option(
    "--prepare-delay",
    default="0.5:3",
    show_default=True,
    callback=_delay,
    help="Seconds until a file is ready: S, LO:HI, or longtail:LO:HI:P:FACTOR.",
)
@click.option(
    "--export-size",
    default="20k",
    show_default=True,
    callback=_size,
    help="Exact size of each export: bytes or with k/m/g (decimal), e.g. 512, 20k, 1g.",
)
@click.option(
    "--expire-after",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds a ready file stays available (0 = never expires).",
)
@click.option(
    "--jwt-lifetime",
    type=click.FloatRange(min=0, min_open=True),
    default=86400.0,
    show_default=True,
    help="Seconds a v4 JWT is valid.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability of a fault per datarequest call.",
)
@click.option(
    "--fault-kinds",
    default=",".join(DEFAULT_FAULT_KINDS),
    show_default=True,
    callback=_fault_kinds,
    help=f"Which faults to inject (the rate is split evenly); accepted: {','.join(FAULT_KINDS)}.",
)
@click.option(
    "--slow-seconds",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="How long a 'slow' fault waits before answering, and a 'stall' halfway through a body.",
)
@click.option(
    "--missing-ids", callback=_ids, help="Profile/subprofile IDs that answer 404, e.g. 5,6,7."
)
@click.option("--id-as-string", is_flag=True, help="Emit info.id as a JSON string.")
@click.option(
    "--database", "databases", multiple=True, metavar="ID=COUNT", help="A database (repeatable)."
)
@click.option(
    "--collection",
    "collections",
    multiple=True,
    metavar="ID=COUNT",
    help="A collection of subprofiles (repeatable).",
)
@click.option("--wrap-id-lists", is_flag=True, help="Wrap paged ID lists as {start,limit,...}.")
@click.option(
    "--behaviour",
    "behaviours",
    multiple=True,
    metavar="ID=NAME",
    help="A hostile behaviour for one target, e.g. 42=not-json (repeatable).",
)
@click.option("--redirect-to", metavar="URL", help="Answer every /v{N}/ call with 301 to URL.")
@click.option(
    "--wire",
    type=click.Choice(WIRES),
    default="classic",
    show_default=True,
    help="classic: the fixed variants below; mixed: every response draws one of the "
    "documented and observed variants at random (seeded).",
)
@click.option(
    "--request-id-style",
    type=click.Choice(REQUEST_ID_STYLES),
    default="numeric",
    show_default=True,
    help="New request IDs: decimal numbers, or odd 'dr_...' strings.",
)
@click.option(
    "--placeholder-info",
    is_flag=True,
    help='The not-ready answer carries "info" beside its "data" text.',
)
@click.option(
    "--placeholder-wording",
    type=click.Choice(PLACEHOLDER_WORDINGS),
    default=None,
    help="The not-ready text [default: v1 'no data available (yet).', "
    "v2-v4 'Data not available (yet)'].",
)
@click.option(
    "--post-status",
    type=click.Choice(["201", "200"]),
    default="201",
    show_default=True,
    help="Status of a successful POST datarequest.",
)
@click.option(
    "--request-id-in",
    type=click.Choice(REQUEST_ID_PLACES),
    default="x-created",
    show_default=True,
    help="Where a POST gives the new request ID: X-Created (+ X-location), only X-location, "
    'only Location, a JSON body {"id": ...}, or a plain-text body.',
)
@click.option(
    "--trickle-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Seconds between the bytes of a 'trickle' target's export.",
)
@click.option(
    "--junk-times",
    type=click.IntRange(min=JUNK_FOREVER),
    default=2,
    show_default=True,
    help=f"GETs of a junk-* target's ready export that get junk first ({JUNK_FOREVER} = forever).",
)
@click.option(
    "--auth-fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability of a blip per POST /authenticate.",
)
@click.option(
    "--auth-fault-kinds",
    default=",".join(DEFAULT_AUTH_FAULT_KINDS),
    show_default=True,
    callback=_auth_fault_kinds,
    help=f"Which authenticate blips to play; accepted: {','.join(AUTH_FAULT_KINDS)}.",
)
@click.option(
    "--auth-faults-first",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The first N authenticate calls after the first successful one fail.",
)
@click.option(
    "--outage-every",
    default="auto",
    show_default=True,
    callback=_outage_every,
    help="Seconds between outages (the port refuses connections); 'auto' = none in the "
    "classic wire, every 20-40 s in the mixed one; 'never' = none.",
)
@click.option(
    "--outage-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="How long an outage lasts (x0.5..1.5 in the mixed wire).",
)
@click.option(
    "--mixed-exclude",
    default="",
    callback=_mixed_exclude,
    help=f"Variant groups the mixed wire leaves alone; accepted: {','.join(MIXED_GROUPS)}.",
)
@click.option(
    "--mixed-rate",
    "mixed_rates",
    multiple=True,
    metavar="NAME=P",
    help=f"Override a mixed-wire probability ({','.join(MIXED_RATES)}), e.g. junk=0.1.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line with the URLs.")
def simulate(
    host: str,
    port: int,
    token: str,
    seed: int,
    rate_limit: float,
    burst: int,
    retry_after_date: bool,
    prepare_delay: str,
    export_size: int,
    expire_after: float,
    jwt_lifetime: float,
    fault_rate: float,
    fault_kinds: tuple[str, ...],
    slow_seconds: float,
    missing_ids: frozenset[str],
    id_as_string: bool,
    databases: tuple[str, ...],
    collections: tuple[str, ...],
    wrap_id_lists: bool,
    behaviours: tuple[str, ...],
    redirect_to: str | None,
    wire: str,
    request_id_style: str,
    placeholder_info: bool,
    placeholder_wording: str | None,
    post_status: str,
    request_id_in: str,
    throttle_style: str,
    trickle_seconds: float,
    junk_times: int,
    auth_fault_rate: float,
    auth_fault_kinds: tuple[str, ...],
    auth_faults_first: int,
    outage_every: float | Literal["auto"] | None,
    outage_seconds: float,
    mixed_exclude: frozenset[str],
    mixed_rates: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run a simulated Copernica data request API (v1-v4) until Ctrl-C.

    Serves /v1../v4/ data request calls, /authenticate (v4 JWTs) and
    /_sim/stats for inspection. Exports are deterministic for a seed.

    \b
    Example:
      batch-export simulate --port 8787 --prepare-delay 0.5:3 --rate-limit 20
      batch-export simulate --port 0 --json --fault-rate 0.05 --database 1=2500
      batch-export simulate --port 8787 --wire mixed --rate-limit 20
    """
    if not token:
        raise click.BadParameter("must not be empty", param_hint="--token")
    try:
        config = SimulatorConfig(
            token=token,
            seed=seed,
            rate_limit=rate_limit or None,
            burst=burst,
            retry_after_http_date=retry_after_date,
            prepare_delay=prepare_delay,
            export_size=export_size,
            expire_after=expire_after or None,
            jwt_lifetime=jwt_lifetime,
            fault_rate=fault_rate,
            fault_kinds=fault_kinds,
            slow_seconds=slow_seconds,
            missing_ids=missing_ids,
            id_as_string=id_as_string,
            behaviours=_behaviours(behaviours),
            redirect_to=redirect_to,
            databases=_pairs(databases, "--database", "profiles in the database"),
            collections=_pairs(collections, "--collection", "subprofiles in the collection"),
            wrap_id_lists=wrap_id_lists,
            wire=wire,
            request_id_style=request_id_style,
            placeholder_info=placeholder_info,
            placeholder_wording=placeholder_wording,
            post_status=int(post_status),
            request_id_in=request_id_in,
            throttle_style=throttle_style,
            trickle_seconds=trickle_seconds,
            junk_times=junk_times,
            auth_fault_rate=auth_fault_rate,
            auth_fault_kinds=auth_fault_kinds,
            auth_faults_first=auth_faults_first,
            outage_every=outage_every,
            outage_seconds=outage_seconds,
            mixed_exclude=mixed_exclude,
            mixed_rates=_mixed_rates(mixed_rates),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def on_ready(base_url: str) -> None:
        if as_json:
            line = {
                "base_url": base_url,
                "api_url": base_url,
                "auth_url": base_url + "/authenticate",
                "token": token,
            }
            click.echo(json.dumps(line))
        else:
            click.echo(f"Simulated Copernica API at {base_url}  (API paths /v1../v4/)")
            click.echo(f"Access token: {token}")
            click.echo("Try:")
            click.echo(
                f"  COPERNICA_ACCESS_TOKEN={token} batch-export run ids.csv --out exports "
                f"--api-url {base_url} --auth-url {base_url}/authenticate --api-version 2"
            )
            click.echo("Stop with Ctrl-C.", err=True)

    try:
        run_forever(config, host, port, on_ready)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def main() -> None:
    """Standalone entry point (``python -m batch_export.simulator``)."""
    simulate(prog_name="python -m batch_export.simulator")
