"""Targets in: read a CSV of IDs, find the ID column, validate, dedupe — streaming.

Real input files come from spreadsheets and CRM exports, so the reader expects
mess: a UTF-8 BOM, semicolons or tabs instead of commas, CRLF line ends, quoted
fields with delimiters and newlines inside, blank lines, extra columns, IDs
typed as ``123.0``, duplicates. Problems with one row become an
:class:`InvalidRow` (reported in the manifest, the run goes on); problems with
the file as a whole raise :class:`~batch_export.errors.InputError` with a
message that names the file, the line and the fix.

The reader streams: it holds one row at a time plus the set of IDs already
seen (needed for dedupe), so a file of millions of rows costs only that set.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import itertools
import os
import re
import sys
import typing
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import InputError

__all__ = ["InvalidRow", "Target", "TargetKind", "TargetReader", "validate_id"]


class TargetKind(str, enum.Enum):
    """What an ID in the input names on the platform."""

    PROFILE = "profile"
    SUBPROFILE = "subprofile"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to export; ``id`` is canonical (see :func:`validate_id`)."""

    kind: TargetKind
    id: str

    @property
    def key(self) -> str:
        """``kind:id`` — unique per target; the journal's key."""
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A data row whose ID cell cannot be used; ``reason`` is ready to print."""

    line: int
    value: str
    reason: str


# Header names recognised without --id-column, most specific first, so a file
# with both "ID" (say, a CRM row number) and "profile_id" uses the latter.
_COLUMN_NAMES: dict[TargetKind, tuple[str, ...]] = {
    TargetKind.PROFILE: ("profile_id", "id", "profile"),
    TargetKind.SUBPROFILE: ("subprofile_id", "id", "subprofile"),
    TargetKind.EMAIL: ("email", "e-mail", "email_address", "id"),
}

_MAX_ID = 2**63 - 1
_SHOWN = 100  # raw values are cut to this many characters in messages
_DIGITS = re.compile(r"[0-9]+")
# Excel and pandas write integer columns that passed through a float as "123.0".
# Only exactly one zero is accepted: "1.000" may be a thousands separator.
_FLOAT_INT = re.compile(r"([0-9]+)\.0")
_NEGATIVE = re.compile(r"-\s*[0-9]+(?:[.,][0-9]+)?")
_FRACTION = re.compile(r"[0-9]*[.,][0-9]+")
_SCIENTIFIC = re.compile(r"[0-9]+(?:[.,][0-9]+)?[eE][+-]?[0-9]+")
# Specials of RFC 5322 that are only legal inside a quoted local part; in a CSV
# cell they nearly always mean two addresses or a display name got mixed in.
_LOCAL_SPECIALS = frozenset('()<>[]:;,\\"')
# surrogateescape turns undecodable bytes into U+DC80..U+DCFF; finding one in a
# decoded line tells us exactly which line held the bad byte.
# The common case — a plain ASCII address — is accepted by one regex; anything
# else takes the slow path, which accepts a superset and explains rejections.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~.-]{{1,64}}@(?:{_LABEL}\.)+{_LABEL}")
_ESCAPED = re.compile("[\udc80-\udcff]")
# Appended after the last line: if the parser swallows it into a field, a quote
# was opened and never closed (csv itself ends such a field silently at EOF).
_EOF = "\ue000batch-export-end-of-input\ue000"
_SNIFF_BYTES = 16 * 1024
_SNIFF_LINES = 200
_DELIMITERS = (",", ";", "\t")


def _show(raw: str) -> str:
    """The raw value quoted and escaped for a message, cut to a readable length."""
    if len(raw) > _SHOWN:
        return repr(raw[:_SHOWN]) + "…"
    return repr(raw)


def _validate_number(kind: TargetKind, raw: str) -> str:
    what = f"{kind.value} ID"
    text = raw.strip()
    if not text:
        raise ValueError(f"empty {what}")
    if _DIGITS.fullmatch(text) is None:
        match = _FLOAT_INT.fullmatch(text)
        if match is not None:
            text = match.group(1)
        elif _NEGATIVE.fullmatch(text):
            raise ValueError(f"{_show(raw)} is not a {what} (negative; IDs start at 1)")
        elif _FRACTION.fullmatch(text):
            raise ValueError(f"{_show(raw)} is not a {what} (not a whole number)")
        elif _SCIENTIFIC.fullmatch(text):
            raise ValueError(
                f"{_show(raw)} is not a {what} (scientific notation: a spreadsheet may have "
                "rounded it; format the column as text and export again)"
            )
        else:
            raise ValueError(f"{_show(raw)} is not a {what} (expected a whole number >= 1)")
    canonical = text.lstrip("0")
    if not canonical:
        raise ValueError(f"{_show(raw)} is not a {what} (zero; IDs start at 1)")
    # Compare lengths before int(): a 5,000-digit cell must not hit int()'s
    # digit limit or cost quadratic time.
    if len(canonical) > 19 or int(canonical) > _MAX_ID:
        raise ValueError(f"{_show(raw)} is not a {what} (too large; the maximum is {_MAX_ID})")
    return canonical


def _bad_char(text: str) -> str | None:
    """The first whitespace or control/format/unassigned character, if any."""
    for ch in text:
        if ch.isspace() or unicodedata.category(ch)[0] == "C":
            return ch
    return None


def _validate_email(raw: str) -> str:
    text = raw.strip()
    if len(text) <= 254 and _PLAIN_EMAIL.fullmatch(text) is not None:
        local, _, domain = text.partition("@")
        return f"{local}@{domain.lower()}"
    shown = _show(raw)
    if not text:
        raise ValueError("empty email address")
    bad = _bad_char(text)
    if bad is not None:
        raise ValueError(
            f"{shown} is not an email address (contains whitespace or control character {bad!r})"
        )
    if len(text) > 254:
        raise ValueError(f"{shown} is not an email address (longer than 254 characters)")
    ats = text.count("@")
    if ats != 1:
        problem = "no '@'" if ats == 0 else "more than one '@'"
        raise ValueError(f"{shown} is not an email address ({problem})")
    local, domain = text.split("@")
    # Domains are case-insensitive; local parts may not be (RFC 5321), so only
    # the domain is folded — before checking it, as lower() can change a
    # character's class ('İ' becomes 'i' plus a combining dot).
    domain = domain.lower()
    if not local:
        raise ValueError(f"{shown} is not an email address (nothing before the '@')")
    if len(local) > 64:
        raise ValueError(f"{shown} is not an email address (part before '@' exceeds 64 characters)")
    special = next((ch for ch in local if ch in _LOCAL_SPECIALS), None)
    if special is not None:
        raise ValueError(f"{shown} is not an email address ({special!r} before the '@')")
    if not domain:
        raise ValueError(f"{shown} is not an email address (nothing after the '@')")
    if "." not in domain:
        raise ValueError(f"{shown} is not an email address (domain {domain!r} has no dot)")
    for label in domain.split("."):
        if not label:
            raise ValueError(
                f"{shown} is not an email address (domain {domain!r} has an empty part)"
            )
        if len(label) > 63:
            raise ValueError(
                f"{shown} is not an email address (domain part longer than 63 characters)"
            )
        # isalnum() admits IDN letters (bücher.de); punycode labels are ASCII anyway.
        wrong = next((ch for ch in label if not (ch.isalnum() or ch == "-")), None)
        if wrong is not None:
            raise ValueError(f"{shown} is not an email address ({wrong!r} in the domain)")
        if label.startswith("-") or label.endswith("-"):
            raise ValueError(
                f"{shown} is not an email address (domain part {label!r} starts or ends with '-')"
            )
    canonical = f"{local}@{domain}"
    if len(canonical) > 254:
        raise ValueError(f"{shown} is not an email address (longer than 254 characters)")
    return canonical


def validate_id(kind: TargetKind, raw: str) -> str:
    """The canonical ID for ``raw``, or :class:`ValueError` whose text says what is wrong.

    Profiles and subprofiles: decimal digits, leading zeros dropped, ``123.0``
    read as 123, 1..2**63-1. Emails: stripped, domain lowercased, local part
    kept as given. A canonical ID never holds whitespace, control characters
    or NUL.
    """
    if kind is TargetKind.EMAIL:
        return _validate_email(raw)
    return _validate_number(kind, raw)


def _is_valid(kind: TargetKind, raw: str) -> bool:
    try:
        validate_id(kind, raw)
    except ValueError:
        return False
    return True


def _sniff_delimiter(lines: list[str]) -> str:
    """The delimiter among , ; TAB that splits the sample most consistently.

    Counting fields per record (with quotes honoured) is more robust than
    csv.Sniffer, which guesses from character frequencies and is easily fooled
    by commas inside names. A file with one column has no delimiter; any will
    do, so a comma is returned.
    """
    best: tuple[float, int] = (0.0, 1)
    choice = ","
    for delimiter in _DELIMITERS:
        counts = [len(row) for row in csv.reader(lines, delimiter=delimiter) if any(row)]
        if not counts:
            continue
        mode = max(set(counts), key=lambda n: (counts.count(n), n))
        if mode < 2:
            continue
        score = (counts.count(mode) / len(counts), mode)
        if score > best:
            best, choice = score, delimiter
    return choice


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
    ) -> None:
        self.source = source
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
        self._seen_any = False

    # -- opening ---------------------------------------------------------------

    def open(self) -> TargetReader:
        """Open the source, sniff the dialect and find the ID column (idempotent)."""
        if self._records is not None:
            return self
        encoding = self._codec()
        binary = self._open_binary()
        self._text = io.TextIOWrapper(
            binary, encoding=encoding, errors="surrogateescape", newline=""
        )
        try:
            head = self._read_head()
            delimiter = _sniff_delimiter(head)
            lines = self._checked(itertools.chain(head, self._text))
            self._csv = csv.reader(lines, delimiter=delimiter)
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
        if self._from_stdin:
            self._text.detach()
        else:
            self._text.close()
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
        path = self.name
        if os.path.isdir(path):
            raise InputError(f"{path} is a directory, not a CSV file")
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise InputError(f"{path} does not exist") from None
        except PermissionError:
            raise InputError(f"{path} cannot be read: permission denied") from None
        except OSError as exc:
            raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from None

    def _read_head(self) -> list[str]:
        """The first lines (a few KB) for sniffing; they are replayed to the parser."""
        assert self._text is not None
        head: list[str] = []
        size = 0
        try:
            while size < _SNIFF_BYTES and len(head) < _SNIFF_LINES:
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

    def _checked(self, lines: Iterable[str]) -> Iterator[str]:
        """Pass lines through, stopping at the first one that held an undecodable byte."""
        for number, line in enumerate(lines, 1):
            # isascii() is a C-speed pass; only non-ASCII lines need the search.
            if not line.isascii():
                bad = _ESCAPED.search(line)
                if bad is not None:
                    raise self._decode_error(number, ord(bad.group()) - 0xDC00)
            yield line
        yield "\n"  # ends a last line that has no line break of its own
        yield _EOF + "\n"

    def _next_record(self) -> tuple[int, list[str]] | None:
        """The next non-blank record and the physical line it starts on."""
        assert self._records is not None
        while True:
            start = self._csv.line_num + 1
            try:
                row = next(self._records)
            except StopIteration:
                return None
            except UnicodeDecodeError:
                raise self._decode_error(self._csv.line_num + 1) from None
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
        self._seen_any = True
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
        if _is_valid(self.kind, row[0]):
            self._index = 0
            self.column = None
            self._first, self._first_line = row, line
            return
        for candidate in _COLUMN_NAMES[self.kind]:
            if candidate in names:
                self._index = names.index(candidate)
                self.column = row[self._index].strip()
                return
        expected = ", ".join(_COLUMN_NAMES[self.kind])
        raise InputError(
            f"no {self.kind.value} ID column in {self.name}; columns found: {found}. "
            f"Name it one of {expected}, or pass its header with --id-column"
        )

    # -- iteration -------------------------------------------------------------

    def __iter__(self) -> Iterator[Target | InvalidRow]:
        self.open()
        try:
            yield from self._iterate()
        finally:
            self.close()

    def _iterate(self) -> Iterator[Target | InvalidRow]:
        kind = self.kind
        index = self._index
        column = self.column if self.column is not None else "1"
        seen: set[str] = set()
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
                    yield InvalidRow(line, raw[:_SHOWN], f"line {line}: {exc}")
                else:
                    if canonical in seen:
                        self.duplicates += 1
                    else:
                        seen.add(canonical)
                        yield Target(kind, canonical)
            pending = self._next_record()
        if self.rows == 0:
            raise InputError(f"{self.name} has a header but no data rows")
