"""One export streaming into a bucket: checked and hashed as it goes, an object only once complete.

A part (``S3Settings.part_size``, 8 MiB by default) is gathered at a time,
the one before it uploading meanwhile: a body that ends within the first
part is sent in one PutObject; a longer one
becomes a multipart upload, started when its first part is full. Each part
goes with its own SHA-256 (``x-amz-checksum-sha256``), so the server refuses
a body damaged on the way, and the next part is read from the platform while
the previous one uploads. ``commit`` finishes the JSON/target check first:
an export that fails it is aborted and never becomes an object.

Before the final PutObject or CompleteMultipartUpload, one HEAD asks whether
the key already holds exactly these bytes (same size and checksum): a run
killed after the upload but before its journal line was durable has
uploaded it already, and a rerun must not add a second copy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import zlib
from typing import Any, Protocol

from ..input.ids import Target
from .s3_settings import S3Location
from .sink import SavedExport
from .writer import CheckedWriter


class ObjectStore(Protocol):
    """What a writer needs of its sink (``S3Sink``): where, how big a part, and the uploads."""

    location: S3Location
    gzip: bool
    part_size: int

    def locate(self, target: Target) -> str: ...

    async def existing(self, key: str, size: int, checksum: str) -> dict[str, Any] | None: ...

    async def put(
        self, key: str, data: io.BytesIO, checksum: str, content_type: str
    ) -> dict[str, Any]: ...

    async def create_upload(self, key: str, content_type: str) -> str: ...

    async def upload_part(
        self, key: str, upload_id: str, number: int, part: io.BytesIO, digest: bytes
    ) -> str: ...

    async def complete_upload(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], checksum: str
    ) -> dict[str, Any]: ...

    async def abort_upload(self, key: str, upload_id: str) -> None: ...


__all__ = ["ObjectStore", "S3Writer", "b64_sha256", "composite_checksum"]

#: raw bytes gathered before one compression step in a worker thread (as the local sink)
COMPRESS_BLOCK = 1024 * 1024
#: S3 allows 10,000 parts: past every 1,000 the part size doubles, so no export is too big
PARTS_PER_STEP = 1000


def b64_sha256(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def composite_checksum(part_digests: list[bytes]) -> str:
    """S3's checksum of a multipart object: the SHA-256 of the parts' SHA-256s, and their count."""
    return f"{b64_sha256(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


def _hash_part(part: io.BytesIO, whole: Any) -> bytes:
    """The part's own SHA-256, and the whole object's digest advanced over it (no copy)."""
    with part.getbuffer() as view:
        whole.update(view)
        return hashlib.sha256(view).digest()


class S3Writer(CheckedWriter):
    """One export on its way into the bucket: write, then commit or discard."""

    def __init__(self, sink: ObjectStore, target: Target) -> None:
        super().__init__(target)
        self._sink = sink
        self._relative = sink.locate(target)
        self._key = sink.location.key(self._relative)
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if sink.gzip else None
        self._raw: list[bytes] = []  # not yet compressed (gzip only)
        self._raw_size = 0
        # The current part, written into a buffer of its own that is then sent as
        # it is: aiohttp reads an io.BytesIO through getbuffer(), which copies a
        # BytesIO made over a bytes object (a second part in memory) but not this.
        self._part = io.BytesIO()
        self._digest = hashlib.sha256()
        self._stored = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._part_digests: list[bytes] = []
        self._sending: asyncio.Task[None] | None = None

    async def _accept(self, chunk: bytes) -> None:
        """Add ``chunk`` to the part; a full part goes to the bucket (multipart)."""
        await self._add(chunk)
        if self._part.tell() >= self._part_size():
            await self._send_part()

    async def _finish(self) -> SavedExport:
        """PutObject, or complete the multipart upload."""
        await self._add(b"", final=True)
        if self._upload_id is None:
            return await self._put_whole(self._take_part())
        if self._part.tell():
            await self._send_part()
        return await self._complete()

    async def _drop(self) -> None:
        """Stop a part in flight and abort the upload."""
        self._part = io.BytesIO()
        self._raw = []
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.cancel()
            with contextlib.suppress(BaseException):
                await sending
        if self._upload_id is not None:
            # Shielded: a cancelled export must still not leave billed parts behind.
            # If storage is down the upload stays, and the next run's recover aborts it.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sink.abort_upload(self._key, self._upload_id))

    # -- the bytes ---------------------------------------------------------------

    async def _add(self, chunk: bytes, *, final: bool = False) -> None:
        """Append ``chunk`` to the current part (compressed first, with gzip)."""
        if self._compressor is None:
            self._keep(chunk)
            return
        if chunk:
            self._raw.append(chunk)
            self._raw_size += len(chunk)
        if self._raw_size >= COMPRESS_BLOCK or final:
            block = b"".join(self._raw)
            self._raw, self._raw_size = [], 0
            compressor = self._compressor
            self._keep(await asyncio.to_thread(compressor.compress, block))
            if final:
                self._keep(compressor.flush())

    def _keep(self, block: bytes) -> None:
        self._part.write(block)

    def _take_part(self) -> io.BytesIO:
        part, self._part = self._part, io.BytesIO()
        return part

    def _part_size(self) -> int:
        return self._sink.part_size << (len(self._parts) // PARTS_PER_STEP)

    async def _send_part(self) -> None:
        """Hand the full part to an upload task; wait for the one before it first.

        Waiting before joining the chunks bounds what is held: the part in
        flight and the next one filling, or the chunks and their join, never
        three parts at once.
        """
        if self._upload_id is None:
            self._upload_id = await self._sink.create_upload(self._key, self._content_type())
        await self._finish_sending()
        part = self._take_part()
        number = len(self._part_digests) + 1
        # On the loop: ~4 ms for 8 MiB, where a worker thread would add its stack
        # and malloc arena to the process (measured: 8 MB of the peak RSS).
        digest = _hash_part(part, self._digest)
        self._part_digests.append(digest)
        self._stored += part.tell()
        self._sending = asyncio.create_task(self._upload(number, part, digest))

    async def _finish_sending(self) -> None:
        sending, self._sending = self._sending, None
        if sending is not None:
            await sending

    async def _upload(self, number: int, part: io.BytesIO, digest: bytes) -> None:
        assert self._upload_id is not None
        etag = await self._sink.upload_part(self._key, self._upload_id, number, part, digest)
        self._parts.append(
            {"PartNumber": number, "ETag": etag, "ChecksumSHA256": b64_sha256(digest)}
        )

    # -- becoming an object --------------------------------------------------------

    async def _put_whole(self, data: io.BytesIO) -> SavedExport:
        self._stored = data.tell()
        _hash_part(data, self._digest)
        digest = self._digest.digest()
        checksum = b64_sha256(digest)
        existing = await self._sink.existing(self._key, self._stored, checksum)
        if existing is None:
            existing = await self._sink.put(self._key, data, checksum, self._content_type())
        return self._saved(digest.hex(), existing)

    async def _complete(self) -> SavedExport:
        await self._finish_sending()
        assert self._upload_id is not None
        checksum = composite_checksum(self._part_digests)
        existing = await self._sink.existing(self._key, self._stored, checksum)
        if existing is not None:
            await self._sink.abort_upload(self._key, self._upload_id)
        else:
            existing = await self._sink.complete_upload(
                self._key, self._upload_id, sorted(self._parts, key=_part_number), checksum
            )
        self._upload_id = None
        return self._saved(self._digest.hexdigest(), existing)

    def _saved(self, sha256: str, store: dict[str, Any]) -> SavedExport:
        return SavedExport(
            file=self._relative,
            bytes=self._stored,
            sha256=sha256,
            gzip=self._sink.gzip,
            store=store,
        )

    def _content_type(self) -> str:
        return "application/gzip" if self._compressor is not None else "application/json"


def _part_number(part: dict[str, Any]) -> int:
    return int(part["PartNumber"])
