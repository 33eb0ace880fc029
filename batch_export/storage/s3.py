"""The object-storage destination: exports as objects in an S3-compatible bucket.

Keys are ``PREFIX/`` plus the same relative names as on disk
(``exports/<kind>/<3 hex>/<name>.json``), so a bucket and a directory hold
an archive the same way, and ``manifest.jsonl``, ``summary.json`` and
``runs.jsonl`` are uploaded under the prefix at the end of every run
(``publish``): the bucket alone is a complete archive.

An object exists only when complete (PutObject, or CompleteMultipartUpload
after every part arrived with its checksum); what a killed run left is an
unfinished multipart upload, which ``recover`` aborts. With retention every
object is written with Object Lock (mode and retain-until, legal hold if
asked). What S3 reports of each object (its SHA-256 checksum, composite for
multipart; its version; its lock) goes into ``SavedExport.store``, hence the
journal and the manifest, and resume and ``verify`` compare the bucket
against it with one HEAD per object.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..errors import TransientError
from ..input.ids import Target
from .memory import return_large_buffers_to_os
from .naming import export_relname, lies_inside
from .s3_calls import S3Calls, error_code
from .s3_preflight import abort_orphaned_uploads, check_bucket
from .s3_settings import S3Settings
from .s3_stored import differences, store_record
from .s3_writer import S3Writer, b64_sha256
from .sink import SavedExport, Sink, UnsafeName

__all__ = ["S3Sink"]

READ_BLOCK = 1024 * 1024


class S3Sink:
    """Streams exports into verified objects under ``s3://BUCKET/PREFIX/``."""

    #: verify's HEAD proves size, checksum, version and lock; reading is ``--deep``
    verify_reads = False
    #: resume compares the bucket against the journal's ``store`` (checksum, version)
    resume_checks_store = True

    def __init__(self, settings: S3Settings, *, gzip: bool = False) -> None:
        self.settings = settings
        self.location = settings.location
        self.gzip = gzip
        self.suffix = ".json.gz" if gzip else ".json"
        self.description = settings.location.url
        self.part_size = settings.part_size
        self.calls = S3Calls(settings)
        return_large_buffers_to_os()  # parts are allocated and freed for every export
        # The lock arguments each multipart upload was started with, recorded on completion.
        self._upload_arguments: dict[str, dict[str, Any]] = {}
        self._counts = {"s3_puts": 0, "s3_multipart": 0, "s3_already_there": 0, "s3_aborted": 0}

    def locate(self, target: Target) -> str:
        return export_relname(target, suffix=self.suffix)

    async def recover(self) -> None:
        """Preflight (bucket, credentials, Object Lock), then abort what a killed run left."""
        await check_bucket(self.calls)
        self._counts["s3_aborted"] += await abort_orphaned_uploads(self.calls)

    def begin(self, target: Target) -> S3Writer:
        return S3Writer(self, target)

    async def save(self, target: Target, head: bytes, rest: AsyncIterator[bytes]) -> SavedExport:
        """Stream one export into the bucket; IntegrityError (no object) if it is not valid."""
        writer = self.begin(target)
        try:
            await writer.write(head)
            async for chunk in rest:
                await writer.write(chunk)
            return await writer.commit()
        except BaseException:
            await writer.discard()
            raise

    async def is_intact(self, file: str, size: int, store: dict[str, Any] | None = None) -> bool:
        """One HEAD: the object is there with the recorded size (and checksum, version)."""
        return await self.inspect(file, size, store) is None

    async def inspect(self, file: str, size: int, store: dict[str, Any] | None) -> str | None:
        """What is wrong with the stored object by its HEAD, or None (for resume and verify)."""
        if not lies_inside(file):
            return "the manifest's file path points outside the prefix"
        head = await self._head(self.location.key(file))
        if head is None:
            return "object is missing"
        return differences(head, size, store)

    async def read(self, file: str) -> AsyncGenerator[bytes, None]:
        """The stored bytes of ``file`` (for ``verify --deep``)."""
        if not lies_inside(file):
            raise UnsafeName(f"{file!r} points outside {self.description}")
        key = self.location.key(file)
        try:
            answer = await self.calls.call("get_object", Bucket=self.location.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(2, "no object is stored under this name", file) from None
            raise self.calls.refused(exc, "get_object", self._url(key)) from None
        async with answer["Body"] as body:
            async for block in body.iter_chunks(READ_BLOCK):
                yield block

    async def stored_exports(self) -> AsyncGenerator[str, None]:
        """Every object under ``PREFIX/exports/``, a ListObjectsV2 page (1000 keys) at a time."""
        async for name in self._listed("exports/"):
            yield name

    async def published(self, prefix: str) -> dict[str, str] | None:
        """The SHA-256 S3 holds for each object under ``PREFIX/prefix`` (one HEAD each)."""
        found: dict[str, str] = {}
        async for name in self._listed(prefix):
            head = await self._head(self.location.key(name))
            checksum = head.get("ChecksumSHA256") if head is not None else None
            if isinstance(checksum, str) and "-" not in checksum:
                found[name] = base64.b64decode(checksum).hex()
            else:
                found[name] = ""  # no whole-object checksum: it cannot be compared
        return found

    async def _listed(self, prefix: str) -> AsyncGenerator[str, None]:
        """The names (relative to PREFIX) of the objects under ``PREFIX/prefix``."""
        arguments: dict[str, Any] = {
            "Bucket": self.location.bucket,
            "Prefix": self.location.key(prefix),
        }
        while True:
            try:
                page = await self.calls.call("list_objects_v2", **arguments)
            except ClientError as exc:
                raise self.calls.refused(exc, "list_objects_v2", self.description) from None
            for item in page.get("Contents", []):
                yield self.location.relative(str(item["Key"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            arguments["ContinuationToken"] = token

    async def publish(self, name: str, path: Path) -> None:
        """Upload an evidence file of the state directory under the prefix (locked, too)."""
        # Streamed from the file: a million-target manifest is hundreds of MB.
        checksum = b64_sha256(await asyncio.to_thread(_file_sha256, path))
        content_type = "application/json" if name.endswith(".json") else "application/x-ndjson"
        await self.put(self.location.key(name), path, checksum, content_type)

    def stats(self) -> dict[str, int]:
        return {
            **self._counts,
            "s3_requests": self.calls.requests,
            "s3_retries": self.calls.retries,
        }

    async def sync(self) -> None:
        """Nothing to do: an object is durable when its PUT or completion is answered."""

    async def close(self) -> None:
        await self.calls.close()

    # -- the operations the writer uses -------------------------------------------

    async def existing(self, key: str, size: int, checksum: str) -> dict[str, Any] | None:
        """The store record of an object already at ``key`` with these bytes, else None."""
        head = await self._head(key)
        if head is None or differences(head, size, {"checksum": checksum}) is not None:
            return None
        self._counts["s3_already_there"] += 1
        return store_record(head)

    async def put(
        self, key: str, data: io.BytesIO | Path, checksum: str, content_type: str
    ) -> dict[str, Any]:
        arguments = self._new_object(key, content_type)
        answer = await self._call(
            "put_object", key, body=data, ChecksumSHA256=checksum, **arguments
        )
        self._counts["s3_puts"] += 1
        return store_record({"ChecksumSHA256": checksum, **arguments, **answer})

    async def create_upload(self, key: str, content_type: str) -> str:
        arguments = self._new_object(key, content_type)
        answer = await self._call(
            "create_multipart_upload", key, ChecksumAlgorithm="SHA256", **arguments
        )
        self._upload_arguments[key] = arguments
        return str(answer["UploadId"])

    async def upload_part(
        self, key: str, upload_id: str, number: int, part: io.BytesIO, digest: bytes
    ) -> str:
        answer = await self._call(
            "upload_part",
            key,
            UploadId=upload_id,
            PartNumber=number,
            body=part,
            ChecksumSHA256=b64_sha256(digest),
        )
        return str(answer["ETag"])

    async def complete_upload(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], checksum: str
    ) -> dict[str, Any]:
        answer = await self._call(
            "complete_multipart_upload", key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        self._counts["s3_multipart"] += 1
        arguments = self._upload_arguments.pop(key, {})
        # The record from what the upload was started with (its lock) and what
        # the server answered (checksum, version), as from a HEAD.
        return store_record({"ChecksumSHA256": checksum, **arguments, **answer})

    async def abort_upload(self, key: str, upload_id: str) -> None:
        self._upload_arguments.pop(key, None)
        try:
            await self.calls.call(
                "abort_multipart_upload", Bucket=self.location.bucket, Key=key, UploadId=upload_id
            )
        except ClientError as exc:
            if error_code(exc) != "NoSuchUpload":
                raise

    # -- helpers -------------------------------------------------------------------

    def _new_object(self, key: str, content_type: str) -> dict[str, Any]:
        arguments: dict[str, Any] = {"ContentType": content_type}
        if self.settings.retention is not None:
            arguments.update(self.settings.retention.put_arguments())
        return arguments

    async def _call(self, operation: str, key: str, **arguments: Any) -> Any:
        try:
            return await self.calls.call(
                operation, Bucket=self.location.bucket, Key=key, **arguments
            )
        except ClientError as exc:
            if error_code(exc) == "NoSuchUpload":
                # Aborted from elsewhere: this export is fetched and uploaded again.
                raise TransientError("the multipart upload was aborted from elsewhere") from None
            raise self.calls.refused(exc, operation, self._url(key)) from None

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = await self.calls.call(
                "head_object", Bucket=self.location.bucket, Key=key, ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.calls.refused(exc, "head_object", self._url(key)) from None
        return head

    def _url(self, key: str) -> str:
        return f"s3://{self.location.bucket}/{key}"


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
    return digest.digest()


_: type[Sink] = S3Sink  # mypy checks that S3Sink implements the Sink protocol
