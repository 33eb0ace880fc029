"""The ``batch-export simulate`` command: parse options, build a config, serve.

The CLI only parses, wires and prints; the behaviour lives in the other
modules (the options in options.py, their checks in option_values.py).
stdout carries data (the base URL, or one JSON line with --json); nothing
else is printed there.
"""

from __future__ import annotations

import json
from typing import Literal

import click

from .config import DEFAULT_COLLECTIONS, DEFAULT_DATABASES, SimulatorConfig
from .option_values import parse_behaviours, parse_mixed_rates, parse_pairs
from .options import (
    auth_fault_options,
    export_options,
    fault_options,
    limit_options,
    outage_options,
    output_options,
    server_options,
    target_options,
    wire_options,
)
from .server import run_forever

__all__ = ["main", "simulate"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@server_options
@limit_options
@export_options
@fault_options
@target_options
@wire_options
@auth_fault_options
@outage_options
@output_options
def simulate(
    host: str,
    port: int,
    token: str,
    seed: int,
    rate_limit: float,
    burst: int,
    limit_shape: str,
    retry_after_date: bool,
    prepare_delay: str,
    export_size: int,
    expire_after: float,
    forget_rate: float,
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
    sign_reports: bool,
    account_id: int,
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
            limit_shape=limit_shape,
            retry_after_http_date=retry_after_date,
            prepare_delay=prepare_delay,
            export_size=export_size,
            expire_after=expire_after or None,
            forget_rate=forget_rate,
            jwt_lifetime=jwt_lifetime,
            fault_rate=fault_rate,
            fault_kinds=fault_kinds,
            slow_seconds=slow_seconds,
            missing_ids=missing_ids,
            id_as_string=id_as_string,
            behaviours=parse_behaviours(behaviours),
            redirect_to=redirect_to,
            # Given ones replace the demo database 42 and collection 7 (SimulatorConfig's default).
            databases=parse_pairs(databases, "--database", "profiles in the database")
            or dict(DEFAULT_DATABASES),
            collections=parse_pairs(collections, "--collection", "subprofiles in the collection")
            or dict(DEFAULT_COLLECTIONS),
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
            sign_reports=sign_reports,
            account_id=account_id,
            auth_fault_rate=auth_fault_rate,
            auth_fault_kinds=auth_fault_kinds,
            auth_faults_first=auth_faults_first,
            outage_every=outage_every,
            outage_seconds=outage_seconds,
            mixed_exclude=mixed_exclude,
            mixed_rates=parse_mixed_rates(mixed_rates),
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
