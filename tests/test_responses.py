"""Reading the platform's answers: every documented and observed shape, without a server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from batch_export.errors import MalformedExportError, WrongTargetError
from batch_export.platform.responses import (
    is_overload,
    is_placeholder,
    is_placeholder_document,
    readable_error,
    request_id_from,
)
from batch_export.storage.validate import ExportChecker, PlaceholderError, check_whole

WORDINGS = [
    "Data not available (yet)",
    "Data not available (yet).",
    "no data available (yet).",
    "DATA NOT AVAILABLE (YET)",
    "Something else entirely",
]
#: the documents a placeholder's ``data`` string may come in
SHAPES: list[Callable[[str], dict[str, Any]]] = [
    lambda text: {"data": text},
    lambda text: {"info": {"type": "profile", "id": 42}, "data": text},
    lambda text: {"info": {"type": "profile", "id": "42"}, "data": text, "extra": 1},
]


@pytest.mark.parametrize("wording", WORDINGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_an_object_whose_data_is_a_string_is_not_ready(
    wording: str, shape: Callable[[str], dict[str, Any]]
) -> None:
    """The placeholder rule holds for every wording, with or without info, in every checker."""
    body = json.dumps(shape(wording)).encode()
    assert is_placeholder(body)
    assert is_placeholder_document(json.loads(body))
    with pytest.raises(PlaceholderError):
        check_whole("profile", "42", body)
    checker = ExportChecker("profile", "42")
    checker.feed(body)
    with pytest.raises(PlaceholderError):
        checker.finish()


def test_only_an_array_data_is_an_export() -> None:
    """An export has data as an array; a list, null or number is not a placeholder."""
    export = json.dumps({"info": {"type": "profile", "id": 42}, "data": [[]]}).encode()
    assert not is_placeholder(export)
    check_whole("profile", "42", export)
    for data in (None, 3, {"a": 1}):
        body = json.dumps({"info": {"type": "profile", "id": 42}, "data": data}).encode()
        assert not is_placeholder(body)
        with pytest.raises(MalformedExportError):
            check_whole("profile", "42", body)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Server Error</body></html>",
        b"",
        b'{"info": {"type": "pro',
        b"[1, 2]",
        b'{"error": {"message": "Internal"}}',
    ],
)
def test_junk_bodies_are_malformed_not_wrong_target(body: bytes) -> None:
    """HTML, empty, cut, array and error bodies are junk (retried), not another target's export."""
    with pytest.raises(MalformedExportError):
        check_whole("profile", "42", body)


def test_another_targets_export_is_wrong_target() -> None:
    """A well-formed export naming another ID or type fails as WrongTargetError."""
    for info in ({"type": "profile", "id": 43}, {"type": "subprofile", "id": 42}):
        body = json.dumps({"info": info, "data": [[]]}).encode()
        with pytest.raises(WrongTargetError):
            check_whole("profile", "42", body)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"X-Created": "123"}, b"", "123"),
        ({"X-Created": " dr_abc "}, b"", "dr_abc"),
        ({"X-location": "https://api.copernica.com/v2/datarequest/77"}, b"", "77"),
        ({"Location": "https://api.copernica.com/v2/datarequest/78/"}, b"", "78"),
        ({}, b'{"id": 79}', "79"),
        ({}, b'{"ID": "x80"}', "x80"),
        ({}, b"81\n", "81"),
        ({}, b'"82"', "82"),
        ({}, b"", None),
        ({}, b"<html>created</html>", None),
        ({}, b"true", None),
        ({"X-Created": "a/b"}, b"", None),
    ],
)
def test_request_id_from_every_documented_place(
    headers: dict[str, str], body: bytes, expected: str | None
) -> None:
    """The ID is read from X-Created, X-location, Location, a JSON or a text body, or refused."""
    assert request_id_from(headers, body) == expected


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (
            503,
            {"Content-Type": "text/html"},
            b"<html><title>Loadbalancer Error</title></html>",
            True,
        ),
        (504, {}, b"<html>Gateway Timeout</html>", True),
        (503, {"X-Reason": "too many requests to handle"}, b'{"error": {"message": "x"}}', True),
        (503, {}, b"", True),
        (503, {}, b'{"error": {"message": "Internal error, please try again later"}}', False),
        (502, {}, b"<html>502 Server Error</html>", False),
        (500, {}, b"", False),
    ],
)
def test_overload_is_told_from_a_failed_call(
    status: int, headers: dict[str, str], body: bytes, expected: bool
) -> None:
    """503/504 HTML, empty or 'too many requests' is overload; the API's own JSON error is not."""
    assert is_overload(status, headers, body) is expected


def test_readable_error_names_the_load_balancer() -> None:
    """An HTML overload page is described as such, never quoted."""
    text = readable_error(b"<html><title>Loadbalancer Error</title></html>", "text/html")
    assert "load balancer" in text and "<" not in text
