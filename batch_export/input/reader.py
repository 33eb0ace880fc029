"""Targets in: read a CSV of IDs, find the ID column, validate, dedupe — streaming.

Real input files come from spreadsheets and CRM exports, so the reader expects
mess: a UTF-8 BOM, semicolons or tabs instead of commas, CRLF line ends, quoted
fields with delimiters and newlines inside, blank lines, extra columns, IDs
typed as ``123.0``, duplicates. Problems with one row become an
:class:`InvalidRow` (reported in the manifest, the run goes on); problems with
the file as a whole raise :class:`~batch_export.errors.InputError` with a
message that names the file, the line and the fix.

The reader streams: it holds one row at a time plus the set of IDs already
seen (needed for dedupe), so a file of millions of rows costs only that set;
a run passes its own ``dedupe`` (the run's compact table of targets,
``evidence/target_table.py``), so it costs no set at all.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import os
import re
import sys
import typing
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError
from . import plain_rows
from .columns import COLUMN_NAMES, no_id_column
from .ids import SHOWN_CHARS, Target, TargetKind, is_valid_id, validate_id
from .stream import SNIFF_BYTES, SNIFF_LINES, Digesting, SetDedupe, open_file, sniff_delimiter

__all__ = ["InputRecord", "InvalidRow", "TargetReader"]

#: a byte that did not decode, as the "surrogateescape" error handler leaves it
_ESCAPED = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A data row whose ID cell cannot be used; ``reason`` is ready to print."""

    line: int
    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class InputRecord:
    """What a run read, for the evidence: which file, exactly which bytes, how many targets."""

    path: str
    size: int
    sha256: str
    rows: int
    targets: int

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "rows": self.rows,
            "targets": self.targets,
        }


_EOF = "\ue000batch-export-end-of-input\ue000"


class TargetReader:
    """Iterates a CSV file (path or '-' for stdin) and yields Target | InvalidRow, each distinct target once.

    ``rows``, ``duplicates``, ``invalid`` and ``column`` are filled in while
    iterating. Use it once; opening and sniffing happen in :meth:`open` or at
    the first iteration, and whole-file problems raise InputError.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        kind: TargetKind,
        *,
        id_column: str | None = None,
        encoding: str = "utf-8",
        stdin: typing.BinaryIO | None = None,
        dedupe: typing.Callable[[str], bool] | None = None,
    ) -> None:
        self.source = source
        #: whether a canonical ID is new (and from then on seen); a set by default
        self._dedupe = dedupe
        self.kind = kind
        self.id_column = id_column
        self.encoding = encoding
        self.stdin = stdin
        self.rows = 0
        self.duplicates = 0
        self.invalid = 0
        self.column: str | None = None
        self.name = "stdin" if os.fspath(source) == "-" else os.fspath(source)
        self._text: io.TextIOWrapper | None = None
        self._from_stdin = os.fspath(source) == "-"
        self._records: Iterator[list[str]] | None = None
        self._csv: typing.Any = None  # the csv reader, for its line_num
        self._index = 0
        self._first: list[str] | None = None  # first row when it is data (headerless)
        self._first_line = 0
        self._binary: typing.BinaryIO | None = None
        self._digesting: Digesting | None = None
        self.targets = 0
        # What the parser reads, in order: the sniffed head, then the file; the
        # fast path puts lines it did not take back in front (``_pushed``).
        self._sources: deque[Iterator[str]] = deque()
        self._pushed: Iterator[str] | None = None
        self._taken = 0  # lines the fast path took, which the parser never counts
        self._fast = False
        self._size = 0  # the file's (0 for stdin): the fast path sizes the table from it

    def record(self) -> InputRecord:
        """The input as read so far (complete once iterated): path, size, sha256, counts."""
        digesting = self._digesting
        path = self.name if self._from_stdin else os.path.abspath(self.name)
        return InputRecord(
            path=path,
            size=digesting.size if digesting is not None else 0,
            sha256=(digesting.digest if digesting is not None else hashlib.sha256()).hexdigest(),
            rows=self.rows,
            targets=self.targets,
        )

    # -- opening ---------------------------------------------------------------

    def open(self) -> TargetReader:
        """Open the source, sniff the dialect and find the ID column (idempotent)."""
        if self._records is not None:
            return self
        encoding = self._codec()
        self._binary = self._open_binary()
        self._size = 0 if self._from_stdin else plain_rows.file_size(self._binary)
        self._digesting = Digesting(self._binary)
        self._text = io.TextIOWrapper(
            io.BufferedReader(self._digesting),
            encoding=encoding,
            errors="surrogateescape",
            newline="",
        )
        try:
            head = self._read_head()
            delimiter = sniff_delimiter(head)
            self._sources.extend((iter(head), self._text))
            self._fast = self.kind is not TargetKind.EMAIL and encoding in plain_rows.FAST_CODECS
            self._csv = csv.reader(self._checked(), delimiter=delimiter)
            self._records = self._csv
            self._find_column()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Release the file; stdin is left open for its owner."""
        if self._text is None:
            return
        self._text.close()  # closes the hashing view only, never the stream under it
        if not self._from_stdin and self._binary is not None:
            self._binary.close()
        self._text = None

    def __enter__(self) -> TargetReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _codec(self) -> str:
        try:
            name = codecs.lookup(self.encoding).name
        except LookupError:
            raise InputError(
                f"unknown encoding {self.encoding!r} for {self.name}; try utf-8, cp1252 or latin-1"
            ) from None
        # utf-8-sig drops a leading BOM (Excel writes one) and reads plain UTF-8 too.
        return "utf-8-sig" if name == "utf-8" else name

    def _open_binary(self) -> typing.BinaryIO:
        if self._from_stdin:
            return self.stdin if self.stdin is not None else sys.stdin.buffer
        return open_file(self.name)

    def _read_head(self) -> list[str]:
        """The first lines (a few KB) for sniffing; they are replayed to the parser."""
        assert self._text is not None
        head: list[str] = []
        size = 0
        try:
            while size < SNIFF_BYTES and len(head) < SNIFF_LINES:
                line = self._text.readline()
                if not line:
                    break
                head.append(line)
                size += len(line)
        except UnicodeDecodeError:
            raise self._decode_error(len(head) + 1) from None
        return head

    def _decode_error(self, line: int, byte: int | None = None) -> InputError:
        shown = f" (byte 0x{byte:02x})" if byte is not None else ""
        if codecs.lookup(self.encoding).name == "utf-8":
            return InputError(
                f"{self.name} line {line} is not valid UTF-8{shown}; if the file is "
                "Latin-1 or Windows-1252, add --encoding cp1252"
            )
        return InputError(
            f"{self.name} line {line} cannot be decoded as {self.encoding}{shown}; "
            "check the file's encoding and pass it with --encoding"
        )

    def _checked(self) -> Iterator[str]:
        """The sources' lines, stopping at the first one that held an undecodable byte."""
        sources = self._sources
        number = 0
        while sources:
            source = sources[0]
            for line in source:
                number += 1
                # isascii() is a C-speed pass; only non-ASCII lines need the search.
                if not line.isascii():
                    bad = _ESCAPED.search(line)
                    if bad is not None:
                        raise self._decode_error(number + self._taken, ord(bad.group()) - 0xDC00)
                yield line
                if not sources or sources[0] is not source:
                    break  # the fast path put lines back in front while this waited
            else:
                sources.popleft()
        yield "\n"  # ends a last line that has no line break of its own
        yield _EOF + "\n"

    def _next_record(self) -> tuple[int, list[str]] | None:
        """The next non-blank record and the physical line it starts on."""
        assert self._records is not None
        while True:
            start = self._csv.line_num + self._taken + 1
            try:
                row = next(self._records)
            except StopIteration:
                return None
            except UnicodeDecodeError:
                raise self._decode_error(self._csv.line_num + self._taken + 1) from None
            except csv.Error as exc:
                raise InputError(
                    f"{self.name} line {start} cannot be parsed as CSV ({exc}); "
                    "a quote '\"' may be missing its closing partner"
                ) from None
            if row and _EOF in row[-1]:
                if row[-1] == _EOF and len(row) == 1:
                    return None
                raise InputError(
                    f"{self.name} line {start}: a quote '\"' is never closed, so every line "
                    "after it was read as part of one field; fix the quote and run again"
                )
            # Rows of nothing but delimiters and spaces are what spreadsheets
            # leave below the data: blank, not invalid.
            if any(cell.strip() for cell in row):
                return start, row

    def _find_column(self) -> None:
        first = self._next_record()
        if first is None:
            raise InputError(f"{self.name} is empty: no data rows")
        line, row = first
        if row:
            row[0] = row[0].lstrip("\ufeff")  # a BOM under a non-UTF-8 encoding name
        names = [cell.strip().casefold() for cell in row]
        found = ", ".join(cell.strip() for cell in row)
        if self.id_column is not None:
            wanted = self.id_column.strip().casefold()
            if wanted not in names:
                raise InputError(
                    f"no column {self.id_column!r} in {self.name}; columns found: {found}. "
                    "Pass the ID column's header with --id-column"
                )
            self._index = names.index(wanted)
            self.column = row[self._index].strip()
            return
        # A first row whose first cell is itself a valid ID is data, even when a
        # later cell happens to read "id" or "profile": headers never hold IDs.
        if is_valid_id(self.kind, row[0]):
            self._index = 0
            self.column = None
            self._first, self._first_line = row, line
            return
        for candidate in COLUMN_NAMES[self.kind]:
            if candidate in names:
                self._index = names.index(candidate)
                self.column = row[self._index].strip()
                return
        raise no_id_column(self.kind, self.name, row)

    # -- iteration -------------------------------------------------------------

    def __iter__(self) -> Iterator[Target | InvalidRow]:
        self.open()
        try:
            yield from self._iterate(True)
        finally:
            self.close()

    def invalid_rows(self) -> Iterator[InvalidRow]:
        """Iterate, yielding only the invalid rows: the targets go to the dedupe alone.

        For a run, whose dedupe is its table: a million ``Target`` objects made
        and dropped cost ~0.4 s.
        """
        self.open()
        try:
            yield from typing.cast(Iterator[InvalidRow], self._iterate(False))
        finally:
            self.close()

    def _iterate(self, targets: bool) -> Iterator[Target | InvalidRow]:
        kind = self.kind
        index = self._index
        column = self.column if self.column is not None else "1"
        dedupe = self._dedupe if self._dedupe is not None else SetDedupe()
        fast, sources = self._fast and index == 0, self._sources
        owner = plain_rows.bulk_owner(dedupe) if fast else None
        if self._first is not None:
            pending: tuple[int, list[str]] | None = (self._first_line, self._first)
            self._first = None
        else:
            pending = self._next_record()
        while pending is not None:
            line, row = pending
            self.rows += 1
            if len(row) <= index:
                self.invalid += 1
                raw = ""
                yield InvalidRow(line, raw, f"line {line} has no value in column {column}")
            else:
                raw = row[index]
                try:
                    canonical = validate_id(kind, raw)
                except ValueError as exc:
                    self.invalid += 1
                    yield InvalidRow(line, raw[:SHOWN_CHARS], f"line {line}: {exc}")
                else:
                    if dedupe(canonical):
                        self.targets += 1
                        if targets:
                            yield Target(kind, canonical)
                    else:
                        self.duplicates += 1
            # Between records the parser has read no line ahead: the fast path may take over.
            if fast and sources and sources[0] is not self._pushed:
                yield from self._plain_rows(dedupe, owner, targets)
            pending = self._next_record()
        if self.rows == 0:
            raise InputError(f"{self.name} has a header but no data rows")

    def _plain_rows(
        self,
        dedupe: typing.Callable[[str], bool],
        owner: plain_rows.BulkInput | None,
        targets: bool,
    ) -> Iterator[Target]:
        """Take blocks of plain-number lines past the parser (``plain_rows``), until one is not.

        The lines of a block that are not plain go back in front of the parser;
        a table's own dedupe (``owner``) takes each block in one call.
        """
        sources, kind = self._sources, self.kind
        while sources and sources[0] is not self._pushed:
            lines = list(itertools.islice(sources[0], plain_rows.BLOCK_LINES))
            if not lines:
                # Spent: the parser, waiting inside it, sees it gone and moves on.
                sources.popleft()
                continue
            ids, rest = plain_rows.take_plain(lines)
            if rest:
                self._pushed = iter(rest)
                sources.appendleft(self._pushed)
            self._taken += len(ids)
            self.rows += len(ids)
            read = self._digesting.size if self._digesting is not None else 0
            new = plain_rows.add_block(
                ids, dedupe, owner, rows=self.rows, read=read, size=self._size
            )
            self.targets += len(new)
            self.duplicates += len(ids) - len(new)
            if targets:
                for target_id in new:
                    yield Target(kind, target_id)
