"""The interface every export destination implements.

A *sink* is where finished exports go: files under the state directory
(``storage/local.py``) or objects in an S3-compatible bucket (``storage/s3.py``). The pipeline, the push receiver, the
manifest writer and ``verify`` use a sink only through this interface, so
none of them knows which destination it is.

What every sink guarantees (``tests/test_sink_conformance.py`` checks each):

- **atomic commit**: an export is visible under its final name only when it
  is complete and has passed the check (valid JSON, the right ``info``, a
  ``data`` array); until ``commit`` nothing is there;
- **discard leaves nothing**: an export that is discarded, fails its check,
  or whose stream breaks leaves no trace under any final name (integrity
  failure never becomes an object);
- **resume finds what is complete**: ``is_intact`` tells whether a committed
  export is still there with the size recorded in the journal;
- **concurrent streams**: many exports may be written at once;
- **crash mid-write**: whatever a killed run left half-written is removed by
  ``recover``, which runs once per run, under the state directory's lock;
- **read gives the stored bytes**: ``read`` yields exactly what was committed
  (compressed, with ``gzip``), which is what ``SavedExport.sha256`` hashes.

Where a target's export lives is decided by one function,
``storage.naming.export_relname``; a sink only adds its suffix (``locate``).
The journal records the name it was given, and the manifest and ``verify``
use that recorded name, never a recomputed one, so a change of naming can
never orphan an earlier archive.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..input.ids import Target

__all__ = ["ExportWriter", "SavedExport", "Sink", "UnsafeName"]


class UnsafeName(ValueError):
    """A recorded name that does not lie inside the sink (a tampered manifest or journal)."""


@dataclass(frozen=True, slots=True)
class SavedExport:
    """A verified export under its final name."""

    file: str  # relative to the sink's root, with '/' separators
    bytes: int  # stored bytes
    sha256: str  # of the stored bytes
    gzip: bool
    #: what the destination itself reports of the stored object, recorded in the
    #: journal and the manifest and checked again by resume and ``verify``
    #: (object storage: its checksum, version and lock); None for local files
    store: dict[str, Any] | None = None
    #: push mode: the signed headers of the delivery it came from and what their
    #: check found (``platform/push_origin.py``), kept as evidence of origin
    origin: dict[str, Any] | None = None


class ExportWriter(Protocol):
    """One export being streamed into a sink: write, then commit or discard."""

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (checked and hashed as it goes; never held whole).

        When it raises (IntegrityError: the body is not this target's export;
        OSError: the destination refused), the export is already discarded.
        """

    async def commit(self) -> SavedExport:
        """Finish the check and make the export visible under its final name.

        Raises IntegrityError (a subclass of it) when the body is not this
        target's export; then nothing is kept, as after ``discard``.
        """

    async def discard(self) -> None:
        """Drop the export: nothing of it stays anywhere. Safe to call twice."""


class Sink(Protocol):
    """A destination for exports (see the module docstring for the guarantees)."""

    #: where the exports go, for messages (e.g. "exports/ under DIR", "s3://bucket/prefix")
    description: str
    #: whether stored exports are gzip-compressed
    gzip: bool
    #: whether ``verify`` reads every byte by default (else only with ``--deep``)
    verify_reads: bool
    #: whether resume needs each done target's ``store`` record from the journal
    resume_checks_store: bool

    def locate(self, target: Target) -> str:
        """Where ``target``'s export is stored, relative to the sink's root."""

    async def recover(self) -> None:
        """Remove what a killed run left half-written; once per run, under the lock."""

    def begin(self, target: Target) -> ExportWriter:
        """Start streaming ``target``'s export (to ``locate(target)`` once committed)."""

    async def save(self, target: Target, head: bytes, rest: AsyncIterator[bytes]) -> SavedExport:
        """Stream one whole export (``head`` then ``rest``): begin, write, commit.

        Raises IntegrityError with nothing kept when it is not the export.
        """

    async def is_intact(self, file: str, size: int, store: dict[str, Any] | None = None) -> bool:
        """Whether the export recorded as ``file`` is there with ``size`` bytes.

        The cheap resume check (no re-hash: that is ``verify``'s job); with
        ``store`` (the journal's record of it) a sink that keeps one compares
        that too. False for a name that does not lie inside the sink.
        """

    async def inspect(self, file: str, size: int, store: dict[str, Any] | None) -> str | None:
        """What is wrong with the stored ``file`` without reading it, or None (for ``verify``)."""

    def read(self, file: str) -> AsyncGenerator[bytes, None]:
        """The stored bytes of ``file``, in chunks (for ``verify``).

        Raises, when iterated, FileNotFoundError if nothing is stored as
        ``file`` and UnsafeName if ``file`` does not lie inside the sink.
        """

    def stored_exports(self) -> AsyncGenerator[str, None]:
        """The name of every export stored under ``exports/``, relative to the root (for ``verify``).

        What a killed run left half-written is not listed (``.partial/`` on
        disk; unfinished multipart uploads in a bucket are not objects).
        """

    async def published(self, prefix: str) -> dict[str, str] | None:
        """The SHA-256 (hex) of each state-directory file ``publish`` put under ``prefix``.

        E.g. ``published("seals/")``. None when the sink keeps no copy of them
        elsewhere (local files: they are the state directory's own).
        """

    async def publish(self, name: str, path: Path) -> None:
        """Put a state-directory file (manifest, summary, runs) beside the exports, if elsewhere."""

    def stats(self) -> dict[str, int]:
        """Counters this destination keeps, merged into the run summary (e.g. commit trips)."""

    async def sync(self) -> None:
        """Make every commit so far durable (the local sink fsyncs directories)."""

    async def close(self) -> None:
        """Release what the sink holds (threads, connections)."""
