"""orjson where the archive's JSON is hot: the same bytes and the same values as ``json``.

The seal's leaf hashes must never change with the encoder (an auditor
recomputes them), and every reader must take what ``json`` took before.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from batch_export.evidence.jsonlines import json_object, loads
from batch_export.evidence.manifest import _encode, iso_time
from batch_export.evidence.replay import _parse
from batch_export.evidence.seal import leaf_hash


def _json_leaf(kind: str, target_id: str, sha256: str, size: int) -> bytes:
    """The leaf as it was always defined: ``json``'s compact array, UTF-8."""
    text = json.dumps([kind, target_id, sha256, size], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(b"\x00" + text.encode()).digest()


def test_leaf_hashes_are_jsons_for_every_character() -> None:
    """Every code point but the surrogates, in an ID: orjson's leaf is json's, byte for byte."""
    characters = (chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)
    chunk: list[str] = []
    for character in characters:
        chunk.append(character)
        if len(chunk) == 64:
            target_id = "".join(chunk)
            assert leaf_hash("email", target_id, "ab" * 32, 7) == _json_leaf(
                "email", target_id, "ab" * 32, 7
            ), f"differs for {target_id!r}"
            chunk = []


@pytest.mark.parametrize("size", [0, 2**63 - 1, 2**64 - 1, 2**64, 10**30])
def test_leaf_hashes_are_jsons_for_any_size(size: int) -> None:
    """Integers orjson refuses (past 64 bits) fall back to json, with the same leaf."""
    assert leaf_hash("profile", "1", "c" * 64, size) == _json_leaf("profile", "1", "c" * 64, size)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1}\n',
        b'{"a": NaN}\n',  # json reads NaN, orjson does not
        b'{"a": 123456789012345678901234567890}\n',  # past 64 bits
        b'\xef\xbb\xbf{"a":1}\n',  # a BOM
        b'{"id":"\xed\xa0\x80"}\n',  # an encoded surrogate, which json.loads of bytes passes
        b'{"a":1,"a":2}\n',  # a repeated key: the last one
        '{"id":"caf\u00e9 \u2028"}\n'.encode(),
    ],
)
def test_readers_take_what_json_took(raw: bytes) -> None:
    """The line readers give what json.loads gives, whichever parser answered."""
    expected = json.loads(raw)
    assert loads(raw) == expected
    assert json_object(raw) == expected
    assert _parse(raw) == expected


@pytest.mark.parametrize("raw", [b"{", b'{"a":1} x\n', b"[1,2]\n", b"\n", b'"\xff"\n'])
def test_readers_refuse_what_json_refused(raw: bytes) -> None:
    """Not JSON, or not an object: the same verdict as before."""
    try:
        expected = json.loads(raw)
    except ValueError:
        with pytest.raises(ValueError):
            loads(raw)
        assert json_object(raw) is None
        return
    assert not isinstance(expected, dict)
    assert json_object(raw) is None


def test_manifest_lines_read_back_as_written() -> None:
    """A manifest line is compact JSON with UTF-8 as it is; a lone surrogate is escaped."""
    entry = {"kind": "email", "id": "jos\u00e9@x.nl", "bytes": 12, "error": None}
    line = _encode(entry)
    assert line == '{"kind":"email","id":"jos\u00e9@x.nl","bytes":12,"error":null}\n'
    odd = {"kind": "email", "id": "a\udc80b", "bytes": 2**70}
    assert json.loads(_encode(odd)) == odd


def test_iso_time_keeps_milliseconds_and_seconds_apart() -> None:
    """The per-second cache gives each timestamp its own milliseconds."""
    assert iso_time(1764331200.1234) == "2025-11-28T12:00:00.123Z"
    assert iso_time(1764331200.9996) == "2025-11-28T12:00:01.000Z"
    assert iso_time(1764331200.5) == "2025-11-28T12:00:00.500Z"
    assert iso_time(None) is None
    assert iso_time(True) is None
