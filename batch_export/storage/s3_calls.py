"""Every call to object storage, classified like the platform's calls: retried, or stopping the run.

One aiobotocore client per sink, its own retries switched off: what is
worth retrying is decided here, with the run's notion of an outage (faults
last minutes): ``SlowDown``, 5xx answers, timeouts and connections that fail
are retried with exponential backoff (0.2 s doubling to 30 s) for up to
``S3Settings.retry_for`` seconds; they never touch the platform's rate
budget, which lives in the platform client. Rejected credentials, a missing
bucket or a denied operation stop the run at once (``ObjectStorageError``,
exit 2), with a message that says what to change; the platform's request
stays open in the journal, so a rerun resumes it.

Credentials come from botocore's standard chain (environment, shared
files, ``--s3-profile``, instance roles). They are secrets like the token:
every message built here passes through a redactor that knows their values.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ..errors import ConfigError, ExportError, StorageError
from ..redaction import Redactor
from .s3_settings import S3Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

__all__ = ["ObjectStorageError", "S3Calls", "error_code"]

log = logging.getLogger(__name__)

#: answers that mean "not now": retried with backoff
RETRYABLE = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "OperationAborted",
        "BadDigest",  # the body was damaged on the way: sending it again is the cure
        "XAmzContentSHA256Mismatch",
        "500",
        "502",
        "503",
        "504",
    }
)
#: answers that mean the credentials themselves were refused
REJECTED_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
    }
)
FIRST_DELAY = 0.2
MAX_DELAY = 30.0


class ObjectStorageError(StorageError):
    """Object storage refused or failed an operation in a way no retry cures: the run stops."""


def error_code(exc: ClientError) -> str:
    """S3's error code (HEAD answers have none: their HTTP status stands in for it)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    if code:
        return code
    return str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


@contextlib.contextmanager
def _body_stream(body: io.BytesIO | Path | None) -> Iterator[IO[bytes] | None]:
    """The body for one attempt, from its start: a part as it is, a file opened afresh."""
    if body is None:
        yield None
    elif isinstance(body, Path):
        with body.open("rb") as handle:
            yield handle
    else:
        body.seek(0)
        yield body


async def _attempt(
    method: Any, body: io.BytesIO | Path | None, arguments: dict[str, Any]
) -> tuple[Any, str | None]:
    """One try: (the answer, None), or (None, why it is worth another); else it raises."""
    with _body_stream(body) as stream:
        if stream is not None:
            arguments["Body"] = stream
        try:
            return await method(**arguments), None
        except ClientError as exc:
            code = error_code(exc)
            if code not in RETRYABLE:
                raise
            return None, code
        except (BotoConnectionError, HTTPClientError, aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__


class S3Calls:
    """The sink's client: opened once, every operation through ``call``."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.redactor = Redactor()
        self.retries = 0  # calls sent again after a retryable failure (for the summary)
        self.requests = 0
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._opening: asyncio.Lock | None = None

    @property
    def where(self) -> str:
        return self.settings.endpoint_url or "AWS S3"

    async def client(self) -> S3Client:
        """The client, created on first use with credentials from the standard chain."""
        if self._client is not None:
            return self._client
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._client is None:
                self._client = await self._open()
        return self._client

    async def _open(self) -> S3Client:
        settings = self.settings
        try:
            session = AioSession(profile=settings.profile)
            credentials = await session.get_credentials()
        except ProfileNotFound:
            raise ConfigError(
                f"--s3-profile {settings.profile!r} is not in the shared AWS config files"
            ) from None
        except (PartialCredentialsError, BotoCoreError) as exc:
            raise ConfigError(f"cannot read the S3 credentials: {type(exc).__name__}") from None
        if credentials is None:
            raise ConfigError(
                "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE / --s3-profile"
            )
        frozen = await credentials.get_frozen_credentials()
        for secret in (frozen.access_key, frozen.secret_key, frozen.token):
            if secret:
                self.redactor.add(secret)
        config = AioConfig(
            # Path-style for self-hosted servers (MinIO, SeaweedFS, Ceph); AWS picks its own.
            s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
            retries={"total_max_attempts": 1},  # retried here, with the run's outage rules
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=64,
            # Our own SHA-256 goes with every upload; no second checksum on top.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="batch-export",
        )
        creator = session.create_client(
            "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config
        )
        return await self._stack.enter_async_context(creator)

    async def call(
        self,
        operation: str,
        *,
        body: io.BytesIO | Path | None = None,
        retry_for: float | None = None,
        **arguments: Any,
    ) -> Any:
        """Run one S3 operation, retrying what is retryable until ``retry_for`` runs out.

        ``body`` is a file object sent from its start each attempt (a part's
        own ``io.BytesIO``, or a ``Path`` opened afresh, never read whole):
        aiohttp then sends it in small writes that wait for the socket, where
        a ``bytes`` body is written at once and whatever the socket does not
        take is copied into the transport's buffer (another whole part in
        memory). ``retry_for`` shortens the
        retry period (the preflight: a bucket unreachable at the start is
        more likely a wrong endpoint than an outage).
        """
        client = await self.client()
        method = getattr(client, operation)
        loop = asyncio.get_running_loop()
        patience = self.settings.retry_for if retry_for is None else retry_for
        started = loop.time()
        deadline = started + patience
        delay = FIRST_DELAY
        while True:
            self.requests += 1
            answer, reason = await _attempt(method, body, arguments)
            if reason is None:
                return answer
            if loop.time() + delay > deadline:
                raise ObjectStorageError(
                    self.redactor(
                        f"object storage at {self.where} kept failing {operation} for "
                        f"{loop.time() - started:.0f} s (last: {reason}); the run stops, "
                        "rerun the same command to resume"
                    )
                ) from None
            if self.retries % 20 == 0:
                log.warning("object storage: %s failed (%s); retrying", operation, reason)
            self.retries += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_DELAY)

    def refused(self, exc: ClientError, operation: str, what: str) -> ObjectStorageError:
        """The run-stopping error for an answer no retry cures, with what to change."""
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message") or "")
        if code in REJECTED_CREDENTIALS or (code == "403" and operation == "head_bucket"):
            advice = (
                "the storage credentials were rejected: check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY or the profile"
            )
        elif code in ("NoSuchBucket", "404") and operation in ("head_bucket", "list_objects_v2"):
            advice = f"bucket {self.settings.location.bucket!r} does not exist at {self.where}"
        elif code in ("AccessDenied", "403"):
            advice = f"the credentials may not {operation} on {what} (check the bucket policy)"
        else:
            advice = f"{operation} on {what} failed"
        detail = f"{code}: {message}" if message and message != code else code
        return ObjectStorageError(self.redactor(f"object storage: {advice} ({detail})"))

    def failed(self, exc: BaseException, operation: str, what: str) -> ExportError:
        """``refused`` for a ClientError; any other failure named by its class only."""
        if isinstance(exc, ClientError):
            return self.refused(exc, operation, what)
        if isinstance(exc, NoCredentialsError):
            return ConfigError("no S3 credentials found")
        return ObjectStorageError(
            self.redactor(f"object storage: {operation} on {what} failed ({type(exc).__name__})")
        )

    async def close(self) -> None:
        """Close the client and its connections."""
        self._client = None
        await self._stack.aclose()
