"""Every error the exporter raises on purpose, in one tree.

::

    ExportError                 base of everything below; str() is safe to print
    ├── ConfigError             the run cannot start: bad option, input, output dir (exit 2)
    │   └── InputError          the input CSV as a whole is unusable (unreadable, empty, no ID column)
    ├── AuthError               credentials rejected, even after a refresh (exit 2)
    ├── StorageError            an export cannot be written (disk full, permissions): the run stops (exit 2)
    ├── OutageError             the platform stayed unreachable too long: the run stops resumably (exit 2)
    ├── InternalError           a bug in batch-export itself: the run stops (exit 70)
    ├── TargetError             one target failed for good; the run goes on (manifest "failed")
    │   ├── IntegrityError      the platform served something that is not this target's export
    │   │   ├── MalformedExportError  not an export at all (HTML, empty, cut, an error object): retried first
    │   │   └── WrongTargetError      a well-formed export of another target: never retried
    │   └── RequestGoneError    the platform no longer knows the request ID (expired or unknown)
    └── TransientError          worth retrying: timeouts, resets, truncated bodies, 5xx, 429
        ├── RateLimitedError    a 429, or a 503/504 from the overloaded load balancer: slow down
        └── UnreachableError    no connection at all (refused, DNS, TLS, connect timeout): an outage

``exit_code`` on each class is what the command line exits with when that
error stops a run.

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
    "InternalError",
    "MalformedExportError",
    "OutageError",
    "RateLimitedError",
    "RequestGoneError",
    "StorageError",
    "TargetError",
    "TransientError",
    "UnreachableError",
    "WrongTargetError",
]


class ExportError(Exception):
    """Base class: a failure the exporter understands and can describe safely."""

    #: the command line's exit status when this error stops a run
    exit_code = 2


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


class OutageError(ExportError):
    """The platform could not be reached for longer than the outage timeout."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


class InternalError(ExportError):
    """Something batch-export did not expect: a bug, to be reported, not retried."""

    exit_code = 70


class TargetError(ExportError):
    """One target failed permanently; other targets are unaffected."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class IntegrityError(TargetError):
    """The served body is not a valid export of the requested target."""


class MalformedExportError(IntegrityError):
    """The body is not an export at all: what proxies and load balancers serve; retried."""


class WrongTargetError(IntegrityError):
    """A well-formed export, but of another target: the platform mixed things up."""


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
    """The platform said "slower": a 429, or a 503/504 from its overloaded load balancer.

    ``retry_after`` is its hint in seconds, if it sent one.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int = 429
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class UnreachableError(TransientError):
    """No connection could be made to ``host``; ``reason`` says why (refused, DNS, TLS...)."""

    def __init__(self, message: str, *, host: str, reason: str) -> None:
        super().__init__(message)
        self.host = host
        self.reason = reason
