"""Where exports go in object storage and how they are locked: ``S3Settings``, ``Retention``.

Validated once, when built, so a typo in ``--to`` or a retention date in
the past fails before the first request. Nothing here is a secret:
credentials come from the standard AWS chain (environment, shared config
and credentials files, ``--s3-profile``) and are resolved by botocore, never
stored in these objects or written anywhere by us.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import ConfigError

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "Retention", "S3Location", "S3Settings"]

#: parts of a multipart upload; every part but the last must be at least 5 MiB on AWS
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024

# AWS's rules for bucket names (3-63 characters, lowercase letters, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]


@dataclass(frozen=True)
class S3Location:
    """``s3://BUCKET/PREFIX``: the bucket and the key prefix every object goes under."""

    bucket: str
    prefix: str  # without leading or trailing '/'; may be empty

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Read ``s3://bucket/prefix``; ConfigError naming what is wrong."""
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise ConfigError(f"--to must be an s3://BUCKET/PREFIX URL, not {url!r}")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigError(f"--to {url!r}: only s3://BUCKET/PREFIX, without ?, # or user@")
        if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
            raise ConfigError(
                f"--to {url!r}: {parts.netloc!r} is not a valid bucket name "
                "(3-63 lowercase letters, digits, dots or hyphens)"
            )
        prefix = parts.path.strip("/")
        if any(segment in ("", ".", "..") for segment in prefix.split("/") if prefix):
            raise ConfigError(f"--to {url!r}: the prefix may not have empty, '.' or '..' parts")
        return cls(parts.netloc, prefix)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, relative: str) -> str:
        """The object key of ``relative`` (a name like ``exports/profile/abc/1.json``)."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key: str) -> str:
        """The inverse of ``key``."""
        return key[len(self.prefix) + 1 :] if self.prefix else key


@dataclass(frozen=True)
class Retention:
    """Object Lock for every object a run writes: a mode and a retain-until rule."""

    mode: LockMode = "COMPLIANCE"
    days: int | None = None  # counted from each object's upload
    until: dt.datetime | None = None  # one fixed date for every object
    legal_hold: bool = False

    def __post_init__(self) -> None:
        if (self.days is None) == (self.until is None) and not self.legal_hold:
            raise ConfigError("give one of --retention-days and --retain-until")
        if self.days is not None and self.until is not None:
            raise ConfigError("--retention-days and --retain-until exclude each other")
        if self.days is not None and not 1 <= self.days <= 36500:
            raise ConfigError(f"--retention-days must be 1 to 36500, not {self.days}")
        if self.until is not None and self.until <= dt.datetime.now(dt.timezone.utc):
            raise ConfigError(f"--retain-until {self.until.date()} is not in the future")

    @property
    def locks(self) -> bool:
        """Whether objects get a retain-until date (a legal hold alone has none)."""
        return self.days is not None or self.until is not None

    def retain_until(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """The retain-until date for an object uploaded ``now``."""
        if self.until is not None:
            return self.until
        if self.days is None:
            return None
        now = now or dt.datetime.now(dt.timezone.utc)
        return (now + dt.timedelta(days=self.days)).replace(microsecond=0)

    def put_arguments(self) -> dict[str, Any]:
        """The Object Lock arguments of a PutObject or CreateMultipartUpload."""
        arguments: dict[str, Any] = {}
        until = self.retain_until()
        if until is not None:
            arguments["ObjectLockMode"] = self.mode
            arguments["ObjectLockRetainUntilDate"] = until
        if self.legal_hold:
            arguments["ObjectLockLegalHoldStatus"] = "ON"
        return arguments

    def describe(self) -> dict[str, Any]:
        """For the destination record and the summary."""
        return {
            "mode": self.mode if self.locks else None,
            "days": self.days,
            "until": self.until.isoformat() if self.until else None,
            "legal_hold": self.legal_hold,
        }


@dataclass(frozen=True)
class S3Settings:
    """An S3-compatible destination: where, how to reach it, and how to lock what is written."""

    location: S3Location
    endpoint_url: str | None = None  # None: AWS (or AWS_ENDPOINT_URL, read by botocore)
    region: str | None = None
    profile: str | None = None
    retention: Retention | None = None
    part_size: int = DEFAULT_PART_SIZE
    #: how long SlowDown, 5xx and connection failures are retried before the run stops
    retry_for: float = 900.0

    def __post_init__(self) -> None:
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"--s3-endpoint-url must be an http(s):// URL, not {self.endpoint_url!r}"
                )
            if parts.username or parts.password:
                raise ConfigError("--s3-endpoint-url may not carry credentials")
        if self.part_size < 64 * 1024:
            raise ConfigError("the multipart part size must be at least 64 KiB")
        if self.retry_for <= 0:
            raise ConfigError("the object-storage retry period must be positive")

    def describe(self) -> dict[str, Any]:
        """What the state directory and the summary record of the destination (no secrets)."""
        return {
            "type": "s3",
            "url": self.location.url,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "retention": self.retention.describe() if self.retention else None,
        }


def parse_retain_until(text: str) -> dt.datetime:
    """``2033-12-31`` (end of that day, UTC) or a full ISO 8601 time."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(23, 59, 59), dt.timezone.utc)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--retain-until {text!r} is not a date like 2033-12-31") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
