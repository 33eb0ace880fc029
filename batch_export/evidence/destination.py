"""Which destination a state directory's exports are in: ``DIR/destination.json``.

Written by the first run with ``--to s3://…`` (a directory without it holds
its exports under ``DIR/exports/``). Later runs must send their exports to
the same place: a resume that switched destination would find none of the
earlier exports, export everything again and leave a manifest that names
objects in two places. ``verify`` and ``status`` read it to know where to
look. It holds no secret: the bucket, prefix, endpoint, region and
retention, never credentials.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..durable import write_atomically
from ..errors import ConfigError
from ..storage.s3_settings import S3Location, S3Settings

__all__ = [
    "DESTINATION_NAME",
    "check_destination",
    "record_destination",
    "recorded_destination",
    "recorded_location",
    "recorded_settings",
]

DESTINATION_NAME = "destination.json"


def recorded_destination(out_dir: Path) -> dict[str, Any] | None:
    """What ``destination.json`` says, None when the exports are local files."""
    path = out_dir / DESTINATION_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); restore it from the bucket") from None
    if (
        not isinstance(record, dict)
        or record.get("type") != "s3"
        or not isinstance(record.get("url"), str)
    ):
        raise ConfigError(f"{path} does not describe a destination; restore it from the bucket")
    return record


def recorded_location(out_dir: Path) -> S3Location | None:
    """The bucket and prefix DIR's exports are in, None for local files."""
    record = recorded_destination(out_dir)
    return None if record is None else S3Location.parse(str(record["url"]))


def recorded_settings(
    out_dir: Path,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
) -> S3Settings | None:
    """Settings to reach DIR's bucket (for ``verify``); the arguments override the record."""
    record = recorded_destination(out_dir)
    if record is None:
        return None
    recorded_endpoint = record.get("endpoint_url")
    recorded_region = record.get("region")
    return S3Settings(
        S3Location.parse(str(record["url"])),
        endpoint_url=endpoint_url or (str(recorded_endpoint) if recorded_endpoint else None),
        region=region or (str(recorded_region) if recorded_region else None),
        profile=profile,
    )


def check_destination(out_dir: Path, settings: S3Settings | None) -> None:
    """Refuse a run whose destination is not the one DIR's exports are in (under the lock)."""
    recorded = recorded_location(out_dir)
    has_local_exports = (out_dir / "exports").exists()
    if settings is None:
        if recorded is not None:
            raise ConfigError(
                f"the exports of {out_dir} are in {recorded.url}: add --to {recorded.url} "
                "(or use another --out for local files)"
            )
        return
    wanted = settings.location
    if recorded is None and has_local_exports:
        raise ConfigError(
            f"the exports of {out_dir} are files under {out_dir / 'exports'}: use another "
            f"--out for {wanted.url}"
        )
    if recorded is not None and recorded != wanted:
        raise ConfigError(
            f"the exports of {out_dir} are in {recorded.url}, not {wanted.url}: use --to "
            f"{recorded.url}, or another --out"
        )


def record_destination(out_dir: Path, settings: S3Settings | None) -> None:
    """Write ``destination.json`` for a first run into object storage, once its preflight passed.

    (After the preflight: a mistyped bucket must not be recorded as the one
    DIR belongs to.) Only under the lock.
    """
    if settings is None or (out_dir / DESTINATION_NAME).exists():
        return
    text = json.dumps(settings.describe(), indent=2, sort_keys=True) + "\n"
    write_atomically(out_dir / DESTINATION_NAME, [text])
