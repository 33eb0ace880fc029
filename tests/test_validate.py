"""The export checks: streamed and whole-body paths give the same verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_export.errors import IntegrityError, WrongTargetError
from batch_export.storage.validate import ExportChecker, PlaceholderError, check_whole

#: a body, and the error both checkers must raise for it (None: accepted)
CASES: list[tuple[bytes, type[Exception] | None]] = [
    (b'{"info": {"type": "profile", "id": 7}, "data": [[{"a": 1}], []]}', None),
    (b'{"data": [], "info": {"id": "7", "type": "profile"}}', None),
    (b'{"data": "Data not available (yet)"}', PlaceholderError),
    (b'{"data": "no data available (yet)."}', PlaceholderError),
    (b'{"info": {"type": "profile", "id": 8}, "data": []}', IntegrityError),
    (b'{"info": {"type": "email", "id": 7}, "data": []}', IntegrityError),
    (b'{"info": {"type": "profile", "id": 7}}', IntegrityError),
    (b'{"info": {"type": "profile", "id": 7}, "data": {}}', IntegrityError),
    (b'{"other": 1}', IntegrityError),
    (b"[1, 2]", IntegrityError),
    (b"<html>502 Bad Gateway</html>", IntegrityError),
    (b'{"info": {"type": "profile", "id": 7}, "data": [', IntegrityError),
    (b"", IntegrityError),
]


def _streamed(body: bytes, cuts: list[int]) -> None:
    checker = ExportChecker("profile", "7")
    previous = 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        checker.feed(body[previous:cut])
        previous = max(previous, cut)
    checker.feed(body[previous:])
    checker.finish()


@pytest.mark.parametrize(("body", "error"), CASES)
def test_whole_and_streamed_agree(body: bytes, error: type[Exception] | None) -> None:
    """Each case is accepted or rejected with the same error class by both checkers."""

    def whole() -> None:
        check_whole("profile", "7", body)

    def streamed() -> None:
        _streamed(body, [3, 10])

    for check in (whole, streamed):
        if error is None:
            check()
        else:
            with pytest.raises(error):
                check()


@given(st.sampled_from(CASES), st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_any_chunking_gives_the_same_verdict(
    case: tuple[bytes, type[Exception] | None], cuts: list[int]
) -> None:
    """However a body is split into chunks, the streamed verdict does not change."""
    body, error = case
    if error is None:
        _streamed(body, cuts)
    else:
        with pytest.raises(error):
            _streamed(body, cuts)


def test_email_ids_match_case_insensitively() -> None:
    """An email export whose info.id differs only in case is accepted."""
    check_whole(
        "email",
        "Ann@example.com",
        b'{"info": {"type": "email", "id": "ann@EXAMPLE.com"}, "data": []}',
    )


def test_an_id_past_64_bits_still_names_its_target() -> None:
    """orjson reads 2**64 as a float; the check reads such an id again, exactly."""
    big = str(2**64)
    check_whole(
        "profile", big, b'{"info": {"type": "profile", "id": ' + big.encode() + b'}, "data": []}'
    )
    with pytest.raises(WrongTargetError):
        check_whole(
            "profile", big, b'{"info": {"type": "profile", "id": 18446744073709551617}, "data": []}'
        )


@pytest.mark.parametrize(
    "body",
    [
        b'{"info": {"type": "profile", "id": 7}, "data": [[NaN, Infinity]]}',
        '{"info": {"type": "profile", "id": 7}, "data": []}'.encode("utf-16"),
    ],
)
def test_what_orjson_refuses_but_json_accepts_is_still_an_export(body: bytes) -> None:
    """The fast parser never narrows what counts as an export: json.loads decides its refusals."""
    check_whole("profile", "7", body)


def _verdict_of_json(kind: str, target_id: str, body: bytes) -> str:
    """What the check says when the body is read the slow, sure way (``json.loads`` whole)."""
    import json

    from batch_export.storage import validate

    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return "MalformedExportError"
    is_object = isinstance(document, dict)
    info = document.get("info") if is_object else None
    try:
        validate._check_shape(
            kind,
            target_id,
            is_object=is_object,
            info=info if isinstance(info, dict) else None,
            data_kind=validate._json_kind(document["data"])
            if is_object and "data" in document
            else None,
        )
    except IntegrityError as exc:
        return type(exc).__name__
    return "ok"


_HEAD = b'{"info": {"type": "profile", "id": 7}, "data": '
ODD_BODIES = [
    _HEAD + b'[["caf\xc3\xa9 \xe2\x80\xa8"]]}',  # valid UTF-8, not ASCII
    _HEAD + b'[["\xff"]]}',  # not UTF-8 inside a string the fast reader skips
    _HEAD + b'[["\xed\xa0\x80"]]}',  # an encoded surrogate: json.loads passes it
    _HEAD + b'[["\\ud800"]]}',  # a lone surrogate escape
    _HEAD + b"[[NaN, Infinity]]}",  # json.loads alone reads these
    _HEAD + b"[[1e999]]}",
    _HEAD + b"[" * 5000 + b"]" * 5000 + b"}",  # nested past any recursion limit
    b'{"info": {"type": "profile", "id": 18446744073709551623}, "data": [[]]}',
    b'{"info": {"type": "profile", "id": 7.0}, "data": [[]]}',
    _HEAD + b'"Data not available (yet)", "data": [[]]}',  # a repeated key: the last one
    _HEAD + b'[[]], "data": "Data not available (yet)"}',
    _HEAD + b"null}",
    _HEAD + b"{}}",
    _HEAD + b"[[]]} trailing",
    b'\xef\xbb\xbf{"info": {"type": "profile", "id": 7}, "data": [[]]}',  # a BOM
    b'{"data": [[]]}',
    b'{"info": "7", "data": [[]]}',
    b"[1, 2]",
]


@pytest.mark.parametrize("body", ODD_BODIES)
def test_the_fast_reader_says_what_json_says(body: bytes) -> None:
    """Whichever reader answers (msgspec, orjson, json), the verdict is json.loads's."""
    expected = _verdict_of_json("profile", "7", body)
    try:
        check_whole("profile", "7", body)
        found = "ok"
    except IntegrityError as exc:
        found = type(exc).__name__
    assert found == expected
