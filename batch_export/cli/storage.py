"""The object-storage options: ``--to s3://…`` and how to reach and lock the bucket.

Credentials are not options: botocore reads them from the standard chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` or
``--s3-profile``, the shared files, instance roles), so they never appear on
a command line, in a process listing or in shell history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import cloup

from ..errors import ConfigError
from ..storage.s3_settings import Retention, S3Location, S3Settings, parse_retain_until

__all__ = ["DESTINATION_OPTIONS", "access_options", "destination_from", "destination_options"]

F = TypeVar("F", bound=Callable[..., Any])

# cloup's options are click's with a place in a --help section (run's "Object storage").
_ACCESS: list[Callable[[Any], Any]] = [
    cloup.option(
        "--s3-endpoint-url",
        metavar="URL",
        help="S3-compatible server (MinIO, SeaweedFS, Ceph…); default AWS or $AWS_ENDPOINT_URL.",
    ),
    cloup.option("--s3-region", metavar="REGION", help="Bucket region (default: the AWS chain's)."),
    cloup.option(
        "--s3-profile", metavar="NAME", help="Profile of the shared AWS files for the credentials."
    ),
]

DESTINATION_OPTIONS: list[Callable[[Any], Any]] = [
    cloup.option(
        "--to",
        "to_url",
        metavar="s3://BUCKET/PREFIX",
        help="Send the exports (and the manifest, summary and run log) to object storage; "
        "--out stays the local state directory.",
    ),
    *_ACCESS,
    cloup.option(
        "--retention-days",
        type=int,
        help="Object Lock every object for this many days from its upload (needs --to).",
    ),
    cloup.option(
        "--retain-until",
        metavar="DATE",
        help="Object Lock every object until this date, e.g. 2033-12-31 (needs --to).",
    ),
    cloup.option(
        "--lock-mode",
        type=click.Choice(["compliance", "governance"]),
        default="compliance",
        show_default=True,
        help="compliance: nobody can shorten or remove the lock; governance: privileged users can.",
    ),
    cloup.option("--legal-hold", is_flag=True, help="Put a legal hold on every object too."),
]


def _apply(func: F, options: list[Callable[[Any], Any]]) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def destination_options(func: F) -> F:
    """``run``'s options for object storage."""
    return _apply(func, DESTINATION_OPTIONS)


def access_options(func: F) -> F:
    """How ``verify`` reaches the bucket a state directory names (overriding its record)."""
    return _apply(func, _ACCESS)


def destination_from(
    *,
    to_url: str | None,
    s3_endpoint_url: str | None,
    s3_region: str | None,
    s3_profile: str | None,
    retention_days: int | None,
    retain_until: str | None,
    lock_mode: str,
    legal_hold: bool,
) -> S3Settings | None:
    """The ``S3Settings`` the options describe; None without ``--to`` (ConfigError if misused)."""
    if to_url is None:
        used = [
            name
            for name, value in (
                ("--s3-endpoint-url", s3_endpoint_url),
                ("--s3-region", s3_region),
                ("--s3-profile", s3_profile),
                ("--retention-days", retention_days),
                ("--retain-until", retain_until),
                ("--legal-hold", legal_hold or None),
            )
            if value is not None
        ]
        if used:
            raise ConfigError(f"{', '.join(used)}: only with --to s3://BUCKET/PREFIX")
        return None
    retention = None
    if retention_days is not None or retain_until is not None or legal_hold:
        retention = Retention(
            mode="GOVERNANCE" if lock_mode == "governance" else "COMPLIANCE",
            days=retention_days,
            until=parse_retain_until(retain_until) if retain_until else None,
            legal_hold=legal_hold,
        )
    return S3Settings(
        S3Location.parse(to_url),
        endpoint_url=s3_endpoint_url,
        region=s3_region,
        profile=s3_profile,
        retention=retention,
    )
