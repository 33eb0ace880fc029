"""The reader's fast path for plain-number lines gives exactly what the per-row path gives.

Every generated file is read twice: with the fast path (``FAST_CODECS`` as
shipped, tiny blocks so block edges fall everywhere) and with it switched off
(``FAST_CODECS`` empty: every line through the CSV parser and
``validate_id``). Items in order, counts, the column, the input record, the
run table's slots and input flags, and any whole-file error must agree.
"""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_export.errors import InputError
from batch_export.evidence.target_table import TargetTable
from batch_export.evidence.target_view import IN_INPUT
from batch_export.input import plain_rows
from batch_export.input.ids import Target, TargetKind
from batch_export.input.plain_rows import FAST_CODECS, take_plain
from batch_export.input.reader import InvalidRow, TargetReader

P = TargetKind.PROFILE

Outcome = tuple[object, ...]


def _read(path: Path, *, fast: bool, table: bool, block: int, encoding: str) -> Outcome:
    """What one read gives, whole: items, counts, record, the table's slots; or the error."""
    codecs = FAST_CODECS if fast else frozenset()
    targets = TargetTable(P.value) if table else None
    reader = TargetReader(
        path,
        P,
        encoding=encoding,
        dedupe=targets.add_input if targets is not None else None,
    )
    items: list[Target | InvalidRow] = []
    with (
        mock.patch.object(plain_rows, "FAST_CODECS", codecs),
        mock.patch.object(plain_rows, "BLOCK_LINES", block),
    ):
        try:
            for item in reader:
                items.append(item)
        except InputError as exc:
            # After a whole-file error the run stops: what was read ahead differs, so
            # the record is not compared, but the items before it and the message are.
            return ("error", str(exc), items)
    slots: list[tuple[str, bool]] = []
    if targets is not None:
        slots = [
            (targets.id_of(slot), targets.has_flag(slot, IN_INPUT)) for slot in range(len(targets))
        ]
        assert targets.input_count == reader.targets
    counts = (reader.rows, reader.duplicates, reader.invalid, reader.targets, reader.column)
    return ("ok", items, counts, reader.record(), slots)


def _both(tmp_path: Path, data: bytes, *, block: int = 3, encoding: str = "utf-8") -> Outcome:
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    results = []
    for table in (True, False):
        fast = _read(path, fast=True, table=table, block=block, encoding=encoding)
        plain = _read(path, fast=False, table=table, block=block, encoding=encoding)
        assert fast == plain
        results.append(fast)
    # The table as dedupe and the default set agree on everything but the slots.
    assert results[0][:3] == results[1][:3]
    return results[0]


# Lines that are plain (fast) and lines that are not (a quote, a blank, a
# 19-digit ID, leading zeros, a float, a second column, bad bytes, a lone CR...).
_PLAIN_LINE = st.integers(min_value=1, max_value=10**18 - 1).map(str)
_ODD_LINE = st.sampled_from(
    [
        "007",
        "0",
        "12.0",
        "1.5",
        "-3",
        "1e5",
        " 12",
        "12 ",
        "",
        ",",
        '"12"',
        '"4\n5"',
        '"never closed',
        "12,x",
        "x,12",
        "abc",
        "9223372036854775807",
        "9223372036854775808",
        "1234567890123456789",
        "é",
        "\u00a0" + "5",
        "\ufeff12",
        "12\x00",
        "\udcff",
    ]
)
_LINE_END = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _files(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(["profile_id", "id", "ID,name", "", None]))
    lines = draw(st.lists(st.one_of(_PLAIN_LINE, _PLAIN_LINE, _PLAIN_LINE, _ODD_LINE), max_size=40))
    if draw(st.booleans()) and lines:  # duplicates, near and far
        lines += draw(st.lists(st.sampled_from(lines), max_size=10))
    ends = draw(st.lists(_LINE_END, min_size=len(lines) + 1, max_size=len(lines) + 1))
    body = [header] if header is not None else []
    text = "".join(line + end for line, end in zip(body + lines, ends, strict=False))
    if not draw(st.booleans()) and text.endswith("\n"):
        text = text[:-1]  # no line break after the last line
    data = text.encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_files(), block=st.sampled_from([1, 2, 3, 7, 4096]))
def test_fast_path_equals_per_row_path(tmp_path: Path, data: bytes, block: int) -> None:
    """Any mix of plain and odd lines: the fast path's outcome is the per-row path's."""
    _both(tmp_path, data, block=block)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_files())
def test_fast_path_equals_per_row_path_cp1252(tmp_path: Path, data: bytes) -> None:
    """The same under another codec the fast path takes."""
    _both(tmp_path, data, encoding="cp1252")


def test_plain_file_takes_the_fast_path(tmp_path: Path) -> None:
    """A plain file's rows do go past the parser (the property test above is not vacuous)."""
    path = tmp_path / "input.csv"
    path.write_bytes(b"profile_id\n" + b"".join(b"%d\n" % n for n in range(1, 2001)) + b"5\n")
    targets = TargetTable(P.value)
    reader = TargetReader(path, P, dedupe=targets.add_input)
    assert list(reader.invalid_rows()) == []
    # Every data line but the first (the fast path starts after a parsed record).
    assert reader._taken == 2000
    assert (reader.rows, reader.targets, reader.duplicates) == (2001, 2000, 1)
    assert [targets.id_of(slot) for slot in range(3)] == ["1", "2", "3"]
    assert targets.input_count == 2000


def test_invalid_rows_yields_only_invalid_rows(tmp_path: Path) -> None:
    """``invalid_rows`` reads as iterating does and yields only the invalid rows, same lines."""
    data = b"profile_id\n1\n007\nx\n2\n\n2\n-1\n" + b"3\n" * 5
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    whole = TargetReader(path, P)
    items = list(whole)
    only = TargetReader(path, P)
    invalid = list(only.invalid_rows())
    assert invalid == [item for item in items if isinstance(item, InvalidRow)]
    assert [row.line for row in invalid] == [4, 8]
    assert only.record() == whole.record()
    assert (only.rows, only.duplicates, only.targets) == (whole.rows, whole.duplicates, 4)


def test_bad_byte_after_plain_lines_names_its_line(tmp_path: Path) -> None:
    """An undecodable byte after a run of fast lines is still reported on its own line."""
    data = b"id\n" + b"".join(b"%d\n" % n for n in range(1, 100)) + b"\xff\n"
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    with pytest.raises(InputError, match="line 101 is not valid UTF-8"):
        list(TargetReader(path, P))


def test_reserve_sizes_the_index_once(tmp_path: Path) -> None:
    """The table's index is sized from the file, not doubled all the way up."""
    path = tmp_path / "input.csv"
    path.write_bytes(b"id\n" + b"".join(b"%d\n" % n for n in range(1, 50001)))
    targets = TargetTable(P.value)
    rebuilds: list[int] = []
    original = TargetTable._rebuild

    def counting(table: TargetTable, bits: int) -> None:
        rebuilds.append(bits)
        original(table, bits)

    with mock.patch.object(TargetTable, "_rebuild", counting):
        list(TargetReader(path, P, dedupe=targets.add_input).invalid_rows())
    assert len(targets) == 50000
    assert len(rebuilds) <= 2  # doubling from 1024 cells would take 7


def test_take_plain_splits_at_the_first_odd_line() -> None:
    assert take_plain(["1\n", "22\r\n", "007\n", "3\n"]) == (["1", "22"], ["007\n", "3\n"])
    assert take_plain(["1\n", "2"]) == (["1"], ["2"])
    assert take_plain(["5\n"]) == (["5"], [])


def test_stdin_takes_the_fast_path_with_the_same_outcome(tmp_path: Path) -> None:
    """From stdin (no file size to size the index from) the fast path reads what a file gives."""
    data = b"id\n" + b"".join(b"%d\r\n" % (n % 7000 + 1) for n in range(10000)) + b"x\n9"
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    outcomes = []
    for source, stdin in ((path, None), ("-", io.BytesIO(data))):
        targets = TargetTable(P.value)
        reader = TargetReader(source, P, stdin=stdin, dedupe=targets.add_input)
        invalid = list(reader.invalid_rows())
        slots = [targets.id_of(slot) for slot in range(len(targets))]
        record = reader.record()
        outcomes.append(
            (invalid, slots, reader.rows, reader.duplicates, record.sha256, record.size)
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2:4] == (10002, 3001)  # the last line, 9, is a duplicate too
    assert [row.line for row in outcomes[0][0]] == [10002]
