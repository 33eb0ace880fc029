"""The one reader of ``DIR/journal.jsonl``: lines, the states they replay into, ``done`` lines.

Resume (``Journal.open``), ``batch-export status`` and the manifest
(``Journal.final_done_records``) all read the journal here, so they agree on
what a line means; ``journal.py`` writes it. A torn tail and damage are told
apart, because they mean different things:

- A crash (routine: a kill, a power cut) can only tear the *last* line:
  reading stops there (``JournalDamage.torn_tail``), and ``complete_end``
  says where ``Journal.open`` truncates the file back to before appending.
- A complete line elsewhere that is not JSON, or not a valid record (not an
  object, an unknown event, a field replay relies on missing or of the wrong
  type), is *damage*: no crash writes that, so the file was edited or the
  disk is failing. It is skipped and left in the file, the good lines around
  it are replayed, and the run goes on (``JournalDamage``). Skipping costs
  redone work, not exports: a lost ``done`` line means one more download, a
  lost ``submitted`` line one ambiguous resubmit (but a lost
  ``push-conflict`` line leaves its target trusting its first pushed file
  unless the re-fetch's ``done`` line follows).
- A damaged *header* (line 1, ``JournalDamage.header``) stops a run: nothing
  else says which kind of export the directory holds.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from .jsonlines import orjson_reads_alike
from .recorded import RecordedFiles
from .target_state import TargetState
from .target_table import DONE, FAILED, NEW, SUBMITTED, SUBMITTING, TargetTable

__all__ = [
    "DONE",
    "EVENTS",
    "FAILED",
    "JOURNAL_NAME",
    "MAX_DAMAGED_LINES",
    "NEW",
    "SUBMITTED",
    "SUBMITTING",
    "JournalDamage",
    "ReplayPoint",
    "TargetState",
    "TargetTable",
    "read_lines",
    "replay",
]

JOURNAL_NAME = "journal.jsonl"


class _Times(Protocol):
    """Where replay puts each ``done`` line's time: a list, an ``array('d')``..."""

    def append(self, value: float, /) -> None: ...


#: how many damaged line numbers are kept in memory (the count goes on)
MAX_DAMAGED_LINES = 100
#: how many of them a message lists
SHOWN_DAMAGED_LINES = 5

#: the warning after a torn last line was dropped: routine after a crash
_DECODER = json.JSONDecoder()  # what json.loads uses
#: the C scanner ``raw_decode`` calls: ``(value, end)``, StopIteration when not JSON
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]

TORN_MESSAGE = "journal: dropped 1 torn line left by a crash (its write never finished)"

#: every event a journal line may carry; any other is damage (add new ones here)
EVENTS = frozenset(
    {
        "submitting",
        "ambiguous",
        "submitted",
        "expired",
        "done",
        "failed",
        "stale",
        "push-conflict",
        "run",
        "seal",
    }
)


@dataclass
class JournalDamage:
    """What reading a journal found wrong with it: damaged lines and a torn tail."""

    #: 1-based numbers of damaged lines (the first ``MAX_DAMAGED_LINES`` of them)
    lines: list[int] = field(default_factory=list)
    #: why each of ``lines`` is damaged, in the same order
    reasons: list[str] = field(default_factory=list)
    #: every damaged line, including those whose numbers were not kept
    count: int = 0
    #: a last line without its newline (a crash mid-write) was dropped
    torn_tail: bool = False
    #: why line 1, the header, is damaged (None if it is fine)
    header: str | None = None
    #: byte offset just past the last complete line (where a torn tail begins)
    complete_end: int = 0
    #: complete lines read (the header included)
    complete_lines: int = 0

    def add(self, number: int, reason: str) -> None:
        """Note that line ``number`` is damaged, and why."""
        self.count += 1
        if len(self.lines) < MAX_DAMAGED_LINES:
            self.lines.append(number)
            self.reasons.append(reason)

    def warnings(self, name: str = JOURNAL_NAME) -> list[str]:
        """What a run should warn about: the damage, and a torn tail (a crash's mark)."""
        found = [TORN_MESSAGE] if self.torn_tail else []
        damaged = self.describe(name)
        if damaged is not None:
            found.insert(0, damaged)
        return found

    def describe(self, name: str = JOURNAL_NAME) -> str | None:
        """The warning about damaged lines (None if there are none).

        Worded so it cannot be taken for the routine news of a crash.
        """
        if not self.count:
            return None
        shown = [str(number) for number in self.lines[:SHOWN_DAMAGED_LINES]]
        more = self.count - len(shown)
        why = "; ".join(dict.fromkeys(self.reasons[:SHOWN_DAMAGED_LINES]))
        if self.count == 1:
            where, pronoun = f"line {shown[0]} is", "it was"
        else:
            listed = ", ".join(shown) if more else ", ".join(shown[:-1]) + " and " + shown[-1]
            where = f"lines {listed}{f' and {more} more' if more else ''} are"
            pronoun = "they were"
        return (
            f"{name}: {where} damaged ({why}); {pronoun} skipped and the good lines "
            "replayed. This is not the torn last line an interrupted write leaves: the "
            "file was changed, or the disk is failing"
        )


def read_lines(
    path: Path,
    damage: JournalDamage,
    *,
    containing: bytes | None = None,
    offset: int = 0,
    before: int = 0,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each good line of a journal, 1-based.

    Line 1 is yielded if it is a JSON object (the caller checks it is a
    header); every later line only if it is a valid record. Damaged lines go
    into ``damage`` (``damage.header`` for line 1) and are skipped; a last
    line without a newline sets ``damage.torn_tail`` and ends the reading.
    With ``containing``, lines without those bytes are skipped unread (and
    so never counted as damage). ``offset`` and ``before`` start the reading
    after the first ``before`` lines, which end at byte ``offset`` (a
    checkpoint's position, ``checkpoint.py``).
    """
    end, lines = offset, before
    with path.open("rb") as handle:
        handle.seek(offset)
        try:
            for number, raw in enumerate(handle, start=before + 1):
                if raw[-1:] != b"\n":
                    damage.torn_tail = True  # a crash mid-write: only ever the last line
                    return
                end += len(raw)
                lines = number
                if containing is not None and containing not in raw:
                    continue
                try:
                    record = _parse(raw)
                except ValueError:
                    problem: str | None = "not valid JSON"
                else:
                    problem = _record_problem(record) if number > 1 else _header_problem(record)
                if problem is None:
                    yield number, record
                    continue
                if number == 1:
                    damage.header = problem
                damage.add(number, problem)
        finally:
            # Once, not per line: a million attribute writes fewer.
            damage.complete_end = end
            damage.complete_lines = lines


def replay(
    path: Path,
    states: TargetTable | dict[str, TargetState],
    *,
    files: RecordedFiles | None = None,
    done_times: _Times | None = None,
    runs: list[dict[str, Any]] | None = None,
    start: ReplayPoint | None = None,
) -> tuple[dict[str, Any] | None, int, JournalDamage]:
    """Fold every good line of a journal into ``states``: the one replay loop.

    Returns line 1 if it is a JSON object (None for an empty file, a header
    torn by a crash, or a damaged one: ``damage.header``), the byte offset
    just past the last complete line (where a torn tail begins), and what was
    found damaged or torn. ``states`` is a ``TargetTable`` (a run, ``status``)
    or a dict of ``TargetState`` (small journals). ``files`` learns each ``done`` line's file,
    ``done_times`` gets its timestamp, ``runs`` gets every ``run`` line.
    With ``start`` (a checkpoint's), ``states`` and the others already hold
    the replay of the lines before ``start.offset``: only the later ones are read.
    """
    damage = JournalDamage() if start is None else start.damage
    header = None if start is None else start.header
    offset, before = (0, 0) if start is None else (start.offset, start.lines)
    fold = states.folder() if isinstance(states, TargetTable) else _dict_folder(states)
    with _collector_paused():
        for number, record in read_lines(path, damage, offset=offset, before=before):
            if number == 1:
                header = record
                continue
            event = record["ev"]
            if event == "run" or event == "seal":
                if runs is not None and event == "run":
                    runs.append(record)
                continue
            target_id = record["id"]  # a str: read_lines checked
            fold(target_id, record)
            if event == DONE:
                if files is not None:
                    files.note(target_id, record)
                if done_times is not None:
                    done_times.append(float(record.get("ts", 0)))
    return header, damage.complete_end, damage


@dataclass
class ReplayPoint:
    """Where a replay picks up: after ``lines`` lines ending at byte ``offset`` (a checkpoint)."""

    offset: int
    lines: int
    #: line 1, read before ``offset``
    header: dict[str, Any]
    #: what the lines before ``offset`` had damaged (added to by the rest)
    damage: JournalDamage


def _dict_folder(states: dict[str, TargetState]) -> Callable[[str, dict[str, Any]], object]:
    """``TargetTable.fold`` for a dict of ``TargetState``."""

    def fold(target_id: str, record: dict[str, Any]) -> None:
        state = states.get(target_id)
        if state is None:
            state = states[target_id] = TargetState()
        state.apply(record)

    return fold


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a replay builds a million states.

    Replay makes no cycles, yet every few hundred new objects would start a
    collection that walks the growing states again: a sixth of its time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse(raw: bytes) -> Any:
    """``json.loads(raw)``, in a third of the time for a line the writer made.

    orjson first where it reads alike (``jsonlines.orjson_reads_alike``:
    1.3 µs a ``done`` line against 3.0; a short ``submitting`` line costs
    1.0 either way). What it refuses: a line that is UTF-8 and starts with ``{`` is
    parsed by the scanner ``json.loads`` would use, without its encoding
    detection and whitespace scans; any other line is ``json.loads``'.
    """
    if orjson_reads_alike(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if raw[:1] == b"{" and raw[1:2] != b"\x00":  # a NUL second byte would mean UTF-16
        text = raw.decode("utf-8", "surrogatepass")
        try:
            record, end = _SCAN(text, 0)  # what raw_decode calls, without its frame
        except StopIteration:
            pass  # not JSON: json.loads says why
        else:
            if end == len(text) - 1:  # nothing after it but its newline
                return record
    return json.loads(raw)


def _header_problem(record: object) -> str | None:
    return None if type(record) is dict else "not a JSON object"


def _is_int(value: object) -> bool:
    return type(value) is int  # not a bool; what json.loads makes of an integer


def _record_problem(record: object) -> str | None:
    """Why a parsed line is not a record replay can use, or None if it is one.

    Runs for every line of every replay: exact type tests (what ``json.loads``
    produces) and the common events first.
    """
    if type(record) is not dict:
        return "not a JSON object"
    event = record.get("ev")
    if type(event) is not str or event not in EVENTS:
        return "not a journal record: no known event"
    ts = record.get("ts")
    if ts is not None and type(ts) is not float and type(ts) is not int:
        return "not a journal record: a bad timestamp"
    if event == "run":
        if any(not _is_int(record.get(name, 0)) for name in ("targets", "invalid", "todo")):
            return "not a journal record: a bad count"
        return None
    if event == "seal":
        return None if _is_int(record.get("seal")) else "not a journal record: a bad seal number"
    return _target_record_problem(record, event)


def _target_record_problem(record: dict[str, Any], event: str) -> str | None:
    """``_record_problem`` for the events about one target."""
    if type(record.get("id")) is not str:
        return "not a journal record: no target ID"
    if event == "done":
        size = record.get("bytes", 0)
        if type(size) is not int or size < 0:
            return "not a journal record: a bad size"
        if type(record.get("sha256", "")) is not str:
            return "not a journal record: a bad sha256"
    elif (event == "submitted" or event == "push-conflict") and type(record.get("rid")) is not str:
        return "not a journal record: no request ID"
    error = record.get("error")
    if error is not None and type(error) is not str:
        return "not a journal record: a bad error"
    return None
