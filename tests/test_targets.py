"""The CSV reader: hostile files in, exact targets and readable messages out."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_export.errors import InputError
from batch_export.input.ids import Target, TargetKind, validate_id
from batch_export.input.reader import InvalidRow, TargetReader

SAMPLES = Path(__file__).resolve().parent.parent / "sample_inputs"
P, S, E = TargetKind.PROFILE, TargetKind.SUBPROFILE, TargetKind.EMAIL


def read(
    tmp_path: Path,
    data: bytes,
    kind: TargetKind = P,
    *,
    id_column: str | None = None,
    encoding: str = "utf-8",
) -> tuple[list[Target | InvalidRow], TargetReader]:
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    reader = TargetReader(path, kind, id_column=id_column, encoding=encoding)
    return list(reader), reader


def ids(items: list[Target | InvalidRow]) -> list[str]:
    return [item.id for item in items if isinstance(item, Target)]


def reasons(items: list[Target | InvalidRow]) -> list[str]:
    return [item.reason for item in items if isinstance(item, InvalidRow)]


# (name, file bytes, kind, expected ids, expected invalid reasons, duplicates, column)
GOOD_FILES = [
    ("plain", b"profile_id\n1\n2\n3\n", P, ["1", "2", "3"], [], 0, "profile_id"),
    ("bom", b"\xef\xbb\xbfprofile_id\n7\n", P, ["7"], [], 0, "profile_id"),
    ("crlf", b"id\r\n5\r\n6\r\n", P, ["5", "6"], [], 0, "id"),
    ("semicolon", b"name;ID;city\nA;1;X\nB;2;Y\n", P, ["1", "2"], [], 0, "ID"),
    ("tab", b"name\tsubprofile_id\nA, B\t9\nC, D\t10\n", S, ["9", "10"], [], 0, "subprofile_id"),
    (
        "quoted with delimiter and newline",
        b'name,profile_id\n"Doe, J",4\n"multi\nline",5\n',
        P,
        ["4", "5"],
        [],
        0,
        "profile_id",
    ),
    ("blank lines", b"\n\nprofile_id\n\n1\n\n\n2\n,\n", P, ["1", "2"], [], 0, "profile_id"),
    ("duplicates counted", b"id\n1\n01\n1.0\n2\n1\n", P, ["1", "2"], [], 3, "id"),
    ("excel float", b"id\n12.0\n", P, ["12"], [], 0, "id"),
    ("headerless", b"11,x\n12,y\n", P, ["11", "12"], [], 0, None),
    ("headerless with 'id' cell", b"11,id\n12,profile\n", P, ["11", "12"], [], 0, None),
    ("preferred column", b"id,profile_id\n1,2\n", P, ["2"], [], 0, "profile_id"),
    (
        "email canonical",
        b"E-Mail\n Anna@Example.NL \nanna@example.nl\n",
        E,
        ["Anna@example.nl", "anna@example.nl"],
        [],
        0,
        "E-Mail",
    ),
    ("email duplicate by domain case", b"email\na@X.nl\na@x.NL\n", E, ["a@x.nl"], [], 1, "email"),
    ("idn email", "email\nüser@bücher.de\n".encode(), E, ["üser@bücher.de"], [], 0, "email"),
    (
        "invalid profile ids",
        b"id\nabc\n-5\n0\n000\n1.5\n99999999999999999999\n1.2E+11\n\n1.000\n9223372036854775807\n",
        P,
        ["9223372036854775807"],
        [
            "line 2: 'abc' is not a profile ID (expected a whole number >= 1)",
            "line 3: '-5' is not a profile ID (negative; IDs start at 1)",
            "line 4: '0' is not a profile ID (zero; IDs start at 1)",
            "line 5: '000' is not a profile ID (zero; IDs start at 1)",
            "line 6: '1.5' is not a profile ID (not a whole number)",
            "line 7: '99999999999999999999' is not a profile ID (too large; the maximum is 9223372036854775807)",
            "line 8: '1.2E+11' is not a profile ID (scientific notation: a spreadsheet may have rounded it; format the column as text and export again)",
            "line 10: '1.000' is not a profile ID (not a whole number)",
        ],
        0,
        "id",
    ),
    (
        "empty cell and short row",
        b"name,id\nA,\nB\nC,3\n",
        P,
        ["3"],
        ["line 2: empty profile ID", "line 3 has no value in column id"],
        0,
        "id",
    ),
    (
        "invalid emails",
        (
            b"email\nnoat.example.nl\na@b@example.nl\n@example.nl\nbob@\nbob@localhost\n"
            b'bob@exa_mple.nl\nbob@-x.nl\nbob@x..nl\n"bob smith"@x.nl\nbob\x01@x.nl\n'
            b"a,b@x.nl\n" + b"l" * 65 + b"@x.nl\n"
        ),
        E,
        [],
        [
            "line 2: 'noat.example.nl' is not an email address (no '@')",
            "line 3: 'a@b@example.nl' is not an email address (more than one '@')",
            "line 4: '@example.nl' is not an email address (nothing before the '@')",
            "line 5: 'bob@' is not an email address (nothing after the '@')",
            "line 6: 'bob@localhost' is not an email address (domain 'localhost' has no dot)",
            "line 7: 'bob@exa_mple.nl' is not an email address ('_' in the domain)",
            "line 8: 'bob@-x.nl' is not an email address (domain part '-x' starts or ends with '-')",
            "line 9: 'bob@x..nl' is not an email address (domain 'x..nl' has an empty part)",
            "line 10: 'bob smith@x.nl' is not an email address (contains whitespace or control character ' ')",
            "line 11: 'bob\\x01@x.nl' is not an email address (contains whitespace or control character '\\x01')",
            "line 12: 'a' is not an email address (no '@')",
            "line 13: '"
            + "l" * 65
            + "@x.nl' is not an email address (part before '@' exceeds 64 characters)",
        ],
        0,
        "email",
    ),
]


@pytest.mark.parametrize(
    ("data", "kind", "want_ids", "want_reasons", "dups", "column"),
    [case[1:] for case in GOOD_FILES],
    ids=[case[0] for case in GOOD_FILES],
)
def test_good_and_hostile_rows(
    tmp_path: Path,
    data: bytes,
    kind: TargetKind,
    want_ids: list[str],
    want_reasons: list[str],
    dups: int,
    column: str | None,
) -> None:
    """Each usable file yields exactly the expected targets, row errors and counts."""
    items, reader = read(tmp_path, data, kind)
    assert ids(items) == want_ids
    assert reasons(items) == want_reasons
    assert reader.duplicates == dups
    assert reader.invalid == len(want_reasons)
    assert reader.rows == len(want_ids) + len(want_reasons) + dups
    assert reader.column == column


# (name, file bytes, kind, options, fragments every one of which the message must hold)
BAD_FILES = [
    ("empty", b"", P, {}, ["input.csv is empty"]),
    ("blank lines only", b"\n\r\n  \n", P, {}, ["input.csv is empty"]),
    ("header only", b"profile_id\r\n", P, {}, ["input.csv has a header but no data rows"]),
    (
        "no id column",
        b"Name;E-mail;City\nA;a@x.nl;Delft\n",
        P,
        {},
        ["no profile ID column in", "columns found: Name, E-mail, City", "--id-column"],
    ),
    (
        "misspelt id column",
        b"Name;E-mail;ID\nA;a@x.nl;1\n",
        P,
        {"id_column": "profileid"},
        ["no column 'profileid' in", "columns found: Name, E-mail, ID", "--id-column"],
    ),
    (
        "not utf-8",
        b"id,name\n1,ok\n2,Ren\xe9\n",
        P,
        {},
        ["input.csv line 3 is not valid UTF-8 (byte 0xe9)", "--encoding cp1252"],
    ),
    ("unknown encoding", b"id\n1\n", P, {"encoding": "klingon"}, ["unknown encoding 'klingon'"]),
    (
        "unclosed quote",
        b'id,name\n1,"Piet\n2,Kees\n3,Anna\n',
        P,
        {},
        ["input.csv line 2: a quote '\"' is never closed"],
    ),
]


@pytest.mark.parametrize(
    ("data", "kind", "options", "fragments"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_unusable_files(
    tmp_path: Path, data: bytes, kind: TargetKind, options: dict[str, str], fragments: list[str]
) -> None:
    """Whole-file problems raise InputError whose message names the file and the fix."""
    with pytest.raises(InputError) as info:
        read(tmp_path, data, kind, **options)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_cp1252_with_option(tmp_path: Path) -> None:
    """The --encoding the message suggests does read the file."""
    items, _ = read(tmp_path, b"id,name\n1,Ren\xe9\n", P, encoding="cp1252")
    assert ids(items) == ["1"]


def test_id_column_option_case_and_space(tmp_path: Path) -> None:
    """--id-column matches the header case-insensitively and ignoring surrounding spaces."""
    items, reader = read(tmp_path, b"Name; Klant Nr ;x\nA;42;y\n", P, id_column="klant nr")
    assert ids(items) == ["42"]
    assert reader.column == "Klant Nr"


def test_directory(tmp_path: Path) -> None:
    """A directory as input is an InputError naming the path."""
    with pytest.raises(InputError, match="is a directory"):
        list(TargetReader(tmp_path, P))


def test_missing_path(tmp_path: Path) -> None:
    """A missing file is an InputError naming the path."""
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputError, match=r"nope\.csv does not exist"):
        list(TargetReader(missing, P))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable(tmp_path: Path) -> None:
    """A file without read permission is an InputError, not a traceback."""
    path = tmp_path / "secret.csv"
    path.write_text("id\n1\n")
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        list(TargetReader(path, P))


def test_stdin() -> None:
    """'-' reads the given binary stdin and leaves it open."""
    stream = io.BytesIO(b"\xef\xbb\xbfemail\r\nA@X.NL\r\n")
    reader = TargetReader("-", E, stdin=stream)
    assert list(reader) == [Target(E, "A@x.nl")]
    assert not stream.closed


def test_messy_sample() -> None:
    """The messy sample (BOM, ';', CRLF, quotes, blank line, bad IDs) reads as documented."""
    reader = TargetReader(SAMPLES / "messy_export.csv", P)
    items = list(reader)
    assert ids(items) == ["1001", "1002", "1003", "1004", "1005", "1006"]
    assert reasons(items) == [
        "line 8: 'abc' is not a profile ID (expected a whole number >= 1)",
        "line 9: '0' is not a profile ID (zero; IDs start at 1)",
        "line 10: '-17' is not a profile ID (negative; IDs start at 1)",
    ]
    assert (reader.rows, reader.duplicates, reader.invalid, reader.column) == (10, 1, 3, "ID")


@pytest.mark.parametrize(
    ("name", "kind", "count"),
    [("profiles.csv", P, 300), ("subprofiles.csv", S, 20), ("emails.csv", E, 20)],
)
def test_samples(name: str, kind: TargetKind, count: int) -> None:
    """Each plain sample file reads cleanly with the expected number of targets."""
    reader = TargetReader(SAMPLES / name, kind)
    assert len(list(reader)) == count
    assert (reader.rows, reader.duplicates, reader.invalid) == (count, 0, 0)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (" 42 ", "42"),
        ("0042", "42"),
        ("42.0", "42"),
        ("9223372036854775807", "9223372036854775807"),
    ],
)
def test_validate_id_accepts(raw: str, canonical: str) -> None:
    """validate_id canonicalises spaces, leading zeros and Excel's '.0'."""
    assert validate_id(P, raw) == canonical


@pytest.mark.parametrize("raw", ["", "1 2", "٣", "²", "+5", "9223372036854775808", "5" * 5000])
def test_validate_id_rejects(raw: str) -> None:
    """Non-ASCII digits, signs, inner spaces and out-of-range values are refused."""
    with pytest.raises(ValueError, match="profile ID"):
        validate_id(P, raw)


def test_reader_streams() -> None:
    """100k rows pass through without the reader holding them: it yields before EOF."""
    consumed = 0

    class Source(io.RawIOBase):
        """A stdin that makes its rows on demand and counts what was taken."""

        def __init__(self) -> None:
            self.lines: Iterator[bytes] = iter(
                [b"profile_id\n", *(b"%d\n" % i for i in range(1, 100_001))]
            )
            self.pending = b""

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            nonlocal consumed
            while len(self.pending) < len(buffer):
                line = next(self.lines, None)
                if line is None:
                    break
                consumed += 1
                self.pending += line
            size = min(len(buffer), len(self.pending))
            buffer[:size] = self.pending[:size]
            self.pending = self.pending[size:]
            return size

    reader = TargetReader("-", P, stdin=io.BufferedReader(Source()))
    iterator = iter(reader)
    assert next(iterator) == Target(P, "1")
    assert consumed < 20_000  # only the first buffers were read
    assert sum(1 for _ in iterator) == 99_999
    assert reader.rows == 100_000


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    numbers = draw(st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=30))
    # Repeat some IDs so dedupe is exercised.
    numbers += draw(st.lists(st.sampled_from(numbers), max_size=5))
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    header = draw(st.booleans())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())
    filler = st.text(alphabet=f"abcXYZ 12{delimiter}\"\n'", max_size=8)
    position = draw(st.integers(0, 1)) if header else 0
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    if header:
        writer.writerow(["profile_id", "note"] if position == 0 else ["note", "profile_id"])
    for number in numbers:
        note = draw(filler)
        writer.writerow([number, note] if position == 0 else [note, number])
    text = out.getvalue().replace("\n", newline) if newline == "\r\n" else out.getvalue()
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    expected = list(dict.fromkeys(str(n) for n in numbers))
    return data, expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files())
def test_round_trip(case: tuple[bytes, list[str]]) -> None:
    """Any list of valid IDs, any delimiter/header/BOM/line end, reads back as its distinct IDs in order."""
    data, expected = case
    reader = TargetReader("-", P, stdin=io.BytesIO(data))
    assert [t.id for t in reader if isinstance(t, Target)] == expected
    assert reader.invalid == 0


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
    st.sampled_from(list(TargetKind)),
)
def test_never_crashes(data: bytes, kind: TargetKind) -> None:
    """Arbitrary bytes either read or raise InputError — never another exception."""
    try:
        for item in TargetReader("-", kind, stdin=io.BytesIO(data)):
            assert isinstance(item, (Target, InvalidRow))
            if isinstance(item, Target):
                assert validate_id(kind, item.id) == item.id
    except InputError as exc:
        assert str(exc)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80), st.sampled_from(list(TargetKind)))
def test_validate_id_canonical_is_clean(raw: str, kind: TargetKind) -> None:
    """A canonical ID is a fixed point of validate_id and holds no whitespace or control char."""
    try:
        canonical = validate_id(kind, raw)
    except ValueError as exc:
        assert str(exc)
        return
    assert validate_id(kind, canonical) == canonical
    assert canonical and all(ch.isprintable() and not ch.isspace() for ch in canonical)


def test_lowercasing_domain_is_revalidated() -> None:
    """A domain whose lowercase form is not a valid label ('İ' → 'i̇') is rejected, not passed on."""
    with pytest.raises(ValueError, match="in the domain"):
        validate_id(E, "a@İx.nl")
