"""What every ``ExportWriter`` does the same way: the check as the bytes stream, and the states.

A writer is open, then committed or discarded. Each chunk is fed to the
target's ``ExportChecker`` before the destination sees it; ``commit`` first
finishes the check, so a body that is not the export never becomes one; and
any failure on the way (the check, the destination, a cancellation) discards
what was written before it propagates. A destination supplies only what is
its own: ``_accept`` (take a checked chunk), ``_finish`` (make the export
visible) and ``_drop`` (remove every trace).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..input.ids import Target
from .sink import SavedExport
from .validate import ExportChecker

__all__ = ["CheckedWriter"]


class CheckedWriter(ABC):
    """The open → committed / discarded life of one export being streamed into a sink."""

    def __init__(self, target: Target) -> None:
        self._checker = ExportChecker(target.kind.value, target.id)
        self._state = "open"  # then "committed" or "discarded"

    async def write(self, chunk: bytes) -> None:
        """Check ``chunk`` and hand it to the destination; on any failure, discard."""
        self._require_open("write to")
        if not chunk:
            return
        try:
            self._checker.feed(chunk)
            await self._accept(chunk)
        except BaseException:
            await self.discard()
            raise

    async def commit(self) -> SavedExport:
        """Finish the check, then make the export visible; on any failure, discard."""
        self._require_open("commit of")
        try:
            self._checker.finish()
            saved = await self._finish()
        except BaseException:
            await self.discard()
            raise
        self._state = "committed"
        return saved

    async def discard(self) -> None:
        """Drop the export: nothing of it stays anywhere. Safe to call twice; a no-op once committed."""
        if self._state != "open":
            return
        self._state = "discarded"
        await self._drop()

    def _require_open(self, action: str) -> None:
        if self._state != "open":
            raise RuntimeError(f"{action} an export already {self._state}")

    @abstractmethod
    async def _accept(self, chunk: bytes) -> None:
        """Take one checked, non-empty chunk."""

    @abstractmethod
    async def _finish(self) -> SavedExport:
        """Write what is left and make the export visible under its final name."""

    @abstractmethod
    async def _drop(self) -> None:
        """Remove whatever was written (called once, only while open)."""
