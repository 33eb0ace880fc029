"""The ``simulate`` command's value checks: option callbacks and repeated-option parsers.

Each turns an option's text into what SimulatorConfig takes, or raises
click.BadParameter with what is accepted; the config checks the combinations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import click

from .config import AUTH_FAULT_KINDS, FAULT_KINDS, MIXED_GROUPS, MIXED_RATES
from .specs import parse_delay, parse_size

__all__ = [
    "check_auth_fault_kinds",
    "check_delay",
    "check_fault_kinds",
    "check_ids",
    "check_mixed_exclude",
    "check_outage_every",
    "check_size",
    "parse_behaviours",
    "parse_mixed_rates",
    "parse_pairs",
]


def parse_pairs(values: Sequence[str], option: str, what: str) -> dict[str, int]:
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


def check_delay(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_delay(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def check_size(ctx: click.Context, param: click.Parameter, value: str) -> int:
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


def check_fault_kinds(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return _subset(value, FAULT_KINDS)


def check_auth_fault_kinds(
    ctx: click.Context, param: click.Parameter, value: str
) -> tuple[str, ...]:
    return _subset(value, AUTH_FAULT_KINDS)


def check_mixed_exclude(ctx: click.Context, param: click.Parameter, value: str) -> frozenset[str]:
    return frozenset(_subset(value, MIXED_GROUPS, allow_empty=True))


_OUTAGE_EVERY_HELP = "accepted: 'auto', 'never' (or 0), or seconds > 0"


def check_outage_every(
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


def parse_mixed_rates(values: Sequence[str]) -> dict[str, float]:
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


def check_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    ids = [i.strip() for i in value.split(",") if i.strip()]
    if not all(i.isdigit() for i in ids):
        raise click.BadParameter(f"{value!r}: accepted: comma-separated numeric IDs, e.g. 5,6,7")
    return frozenset(ids)


def parse_behaviours(values: Sequence[str]) -> dict[str, str]:
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
