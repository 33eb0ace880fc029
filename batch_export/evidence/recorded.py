"""Where the journal says each done target's export is, for a million targets in little memory.

A ``done`` line records its export's ``file``. Resume checks that file and
the manifest names it, never a recomputed one, so a change of naming cannot
orphan an earlier run's exports. Nearly every line records the default name
(``export_relname``), which costs nothing to keep: it is computed again when
asked for. Only the other names are kept.
"""

from __future__ import annotations

from typing import Any

from ..input.ids import Target, TargetKind
from ..storage.naming import export_relname

__all__ = ["RecordedFiles"]


class RecordedFiles:
    """The file each done target's last ``done`` line names: the exceptions, by target ID.

    A line without a ``file`` (or one that is not a string) means the default name.
    """

    __slots__ = ("_kind", "_other")

    def __init__(self, kind: str) -> None:
        self._kind: TargetKind | None
        try:
            self._kind = TargetKind(kind)
        except ValueError:
            self._kind = None  # not a journal open accepts: no name is the default
        self._other: dict[str, str] = {}

    def default(self, target_id: str, *, gzip: bool) -> str | None:
        """The name ``export_relname`` gives the target (None for an unknown kind)."""
        if self._kind is None:
            return None
        suffix = ".json.gz" if gzip else ".json"
        return export_relname(Target(self._kind, target_id), suffix=suffix)

    def note(self, target_id: str, record: dict[str, Any]) -> None:
        """Remember the file of a ``done`` record, if it is not the default one."""
        file = self.of_record(record)
        if file is not None and file != self.default(target_id, gzip=bool(record.get("gzip"))):
            self._other[target_id] = file
        elif self._other:
            self._other.pop(target_id, None)

    def get(self, target_id: str, *, gzip: bool) -> str | None:
        """The file the target's last ``done`` line recorded (``gzip``: that line's)."""
        return self._other.get(target_id) or self.default(target_id, gzip=gzip)

    def others(self) -> dict[str, str]:
        """The names kept (the ones that are not the default), by target ID: for a checkpoint."""
        return dict(self._other)

    def restore(self, others: dict[str, str]) -> None:
        """Take back what ``others`` gave (a checkpoint's)."""
        self._other = dict(others)

    def __len__(self) -> int:
        """How many names are kept: the ones that are not the default."""
        return len(self._other)

    @staticmethod
    def of_record(record: dict[str, Any]) -> str | None:
        """The file a ``done`` record names, None if it names none."""
        file = record.get("file")
        return file if type(file) is str and file else None
