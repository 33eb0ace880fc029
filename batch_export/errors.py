"""Every error the exporter raises on purpose, in one tree.

::

    ExportError                 base of everything below; str() is safe to print
    ├── ConfigError             the run cannot start: bad option, input, output dir (exit 2)
    │   └── InputError          the input CSV as a whole is unusable (unreadable, empty, no ID column)
    ├── AuthError               credentials rejected, even after a refresh (exit 2)
    ├── StorageError            an export cannot be written (disk full, permissions): the run stops (exit 2)
    ├── TargetError             one target failed for good; the run goes on (manifest "failed")
    │   ├── IntegrityError      the platform served something that is not this target's export
    │   └── RequestGoneError    the platform no longer knows the request ID (expired or unknown)
    └── TransientError          worth retrying: timeouts, resets, truncated bodies, 5xx, 429
        └── RateLimitedError    a 429, carrying the server's Retry-After when it sent one

Messages never contain the access token or a JWT: they are built by the client
from redacted URLs, not from aiohttp's exception text.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "ExportError",
    "InputError",
    "IntegrityError",
    "RateLimitedError",
    "RequestGoneError",
    "StorageError",
    "TargetError",
    "TransientError",
]


class ExportError(Exception):
    """Base class: a failure the exporter understands and can describe safely."""


class ConfigError(ExportError):
    """The run cannot start or go on because of its configuration or input."""


class InputError(ConfigError):
    """The input file as a whole cannot be used."""


class AuthError(ExportError):
    """The platform rejected the credentials (after one refresh where possible)."""


class StorageError(ExportError):
    """An export cannot be written to the output directory; no other target could be either.

    Raised by the pipeline around the store, so that a disk error is never
    mistaken for a network one on its way through the client.
    """


class TargetError(ExportError):
    """One target failed permanently; other targets are unaffected."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class IntegrityError(TargetError):
    """The served body is not a valid export of the requested target."""


class RequestGoneError(TargetError):
    """The request ID is unknown to the platform or its file has expired."""


class TransientError(ExportError):
    """A failure that may go away if the same call is made again later.

    ``maybe_sent`` is True when the request may have reached the platform
    before the failure (a reset or timeout while awaiting the answer): for a
    POST that means the platform may have created a data request we never
    heard of, which the journal records as an ambiguous submit.
    """

    def __init__(
        self, message: str, *, status: int | None = None, maybe_sent: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.maybe_sent = maybe_sent


class RateLimitedError(TransientError):
    """The platform answered 429; ``retry_after`` is its hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after
