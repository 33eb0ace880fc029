"""Deterministic, streamed export bodies of an exact size.

Why this shape:

* The exporter's tests compare sha256 digests across runs, so the bytes depend
  only on (seed, kind, target id, size, behaviour) -- never on the request ID
  or the clock.
* Exports range from a few hundred bytes to gigabytes, so the body is produced
  by a generator in ~256 KB chunks and never held whole in memory.
* Speed (hundreds of MB/s) comes from slicing one pre-generated block of
  JSON-escaped base64 text per seed for the bulk (MIME bodies); only the small
  record envelopes are formatted per record.

Document layout: ``{"info": {"type": T, "id": ID}, "data": [[rec, ...], ...]}``.
The size is met exactly by padding the last record (a ``"padding"`` record
whose ``filler`` string has the needed length). When the size is too small for
even one padding record the data array is padded with blanks instead; sizes
below the smallest valid document (``{"info": ..., "data": []}``) are clamped
up to it -- see :func:`export_length`.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from functools import lru_cache

__all__ = ["CHUNK_SIZE", "ExportSpec", "export_chunks", "export_length", "info_for"]

CHUNK_SIZE = 256 * 1024
_LINE = 80  # 76 base64 characters + the JSON escape "\r\n" (4 bytes)
_BLOCK_LINES = 13_107  # ~1 MB block of escaped base64 lines
_EPOCH = datetime(2016, 1, 1, tzinfo=timezone.utc)

_PAD_OPEN = b'{"type": "padding", "filler": "'
_PAD_CLOSE = b'"}'
_PAD_MIN = len(_PAD_OPEN) + len(_PAD_CLOSE)

_HTML_HEAD = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>Bad Gateway</h1><p>The proxy received an invalid response.</p><pre>"
)
_HTML_TAIL = b"</pre></body></html>\n"


@lru_cache(maxsize=8)
def _escaped_block(seed: int) -> bytes:
    """~1 MB of base64 lines joined by a JSON-escaped CRLF; every line is 80 bytes."""
    raw = random.Random(f"batch-export-sim-block:{seed}").randbytes(57 * _BLOCK_LINES)
    b64 = base64.b64encode(raw)
    lines = [b64[i : i + 76] for i in range(0, len(b64), 76)]
    return b"\\r\\n".join(lines) + b"\\r\\n"


@lru_cache(maxsize=8)
def _plain_block(seed: int) -> bytes:
    """The same base64 text without line breaks: safe to cut anywhere (padding filler)."""
    return _escaped_block(seed).replace(b"\\r\\n", b"")


def _filler(seed: int, length: int) -> Iterator[bytes]:
    """`length` bytes of base64 text, in pieces (never one huge allocation)."""
    block = _plain_block(seed)
    while length > 0:
        piece = block[: min(length, len(block))]
        length -= len(piece)
        yield piece


class ExportSpec:
    """What one export body is: everything its bytes are allowed to depend on."""

    __slots__ = ("behaviour", "id_as_string", "kind", "seed", "size", "target_id")

    def __init__(
        self,
        seed: int,
        kind: str,
        target_id: str,
        size: int,
        *,
        id_as_string: bool = False,
        behaviour: str | None = None,
    ) -> None:
        self.seed = seed
        self.kind = kind
        self.target_id = target_id
        self.size = size
        self.id_as_string = id_as_string
        self.behaviour = behaviour

    def __repr__(self) -> str:
        return (
            f"ExportSpec(seed={self.seed}, kind={self.kind!r}, id={self.target_id!r}, "
            f"size={self.size}, behaviour={self.behaviour!r})"
        )


def info_for(spec: ExportSpec) -> dict[str, object]:
    """The export's ``info`` member (honest, or wrong for the wrong-id/-type behaviours)."""
    kind, tid = spec.kind, spec.target_id
    ident: object
    if kind == "email":
        ident = f"other.{tid}" if spec.behaviour == "wrong-id" else tid
    else:
        number = int(tid) + (1 if spec.behaviour == "wrong-id" else 0)
        ident = str(number) if spec.id_as_string else number
    if spec.behaviour == "wrong-type":
        kind = {"profile": "subprofile", "subprofile": "profile"}.get(kind, "profile")
    return {"type": kind, "id": ident}


def _frame(spec: ExportSpec) -> tuple[bytes, bytes]:
    """The bytes before and after the data array's contents."""
    if spec.behaviour == "not-json":
        return _HTML_HEAD, _HTML_TAIL
    if spec.behaviour == "no-info":
        return b'{"result": "ok", "records": [', b"]}"
    info = json.dumps(info_for(spec)).encode()
    return b'{"info": ' + info + b', "data": [', b"]}"


def export_length(spec: ExportSpec) -> int:
    """The exact body length: the configured size, clamped up to the smallest document."""
    head, tail = _frame(spec)
    return max(spec.size, len(head) + len(tail))


def export_chunks(spec: ExportSpec, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the export body in chunks of about `chunk_size` bytes (export_length in all)."""
    head, tail = _frame(spec)
    budget = export_length(spec) - len(head) - len(tail)
    parts: list[bytes] = [head]
    pending = len(head)
    if spec.behaviour == "not-json":
        body: Iterator[bytes] = _filler(spec.seed, budget)
    else:
        body = _records(spec, budget)
    for piece in body:
        parts.append(piece)
        pending += len(piece)
        if pending >= chunk_size:
            yield b"".join(parts)
            parts, pending = [], 0
    parts.append(tail)
    yield b"".join(parts)


def _records(spec: ExportSpec, budget: int) -> Iterator[bytes]:
    """The data array's contents, exactly `budget` bytes, as groups of records."""
    if budget < 1 + _PAD_MIN + 1:
        # Too small for one record: an empty array padded with blanks is still valid JSON.
        yield b" " * budget
        return
    rng = random.Random(f"batch-export-sim:{spec.seed}:{spec.kind}:{spec.target_id}")
    maker = _RecordMaker(spec, rng)
    reserve = 2 + _PAD_MIN + 1  # ", " + the smallest padding record + "]"
    yield b"["
    remaining = budget - 1
    in_group = 0
    misses = 0  # records that did not fit: switch to small kinds, then pad
    group_kind, group_left = maker.new_group()
    while remaining >= reserve:
        if group_left == 0:
            if remaining - 4 < reserve:
                break
            yield b"], ["
            remaining -= 4
            in_group = 0
            group_kind, group_left = maker.new_group()
            continue
        record = maker.record(group_kind)
        sep = b", " if in_group else b""
        cost = len(sep) + sum(len(p) for p in record)
        if remaining - cost < reserve:
            misses += 1
            if misses > 4:
                break
            maker.small_only = True
            if in_group:
                group_left = 0  # close this group, open one of a small kind
            else:
                group_kind, group_left = maker.new_group()  # reuse the empty group
            continue
        if sep:
            yield sep
        yield from record
        remaining -= cost
        in_group += 1
        group_left -= 1
    sep = b", " if in_group else b""
    filler = remaining - len(sep) - 1 - _PAD_MIN
    yield sep + _PAD_OPEN
    yield from _filler(spec.seed, filler)
    yield _PAD_CLOSE + b"]"


_GROUP_KINDS = ("message", "open", "click", "survey")
_GROUP_WEIGHTS = (40, 25, 25, 10)
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.1",
)
_SUBJECTS = (
    "Your monthly newsletter",
    "Last chance: 20% off everything",
    "We miss you!",
    "Your order has shipped",
    "Invitation: customer survey",
    "Nieuwsbrief december",
)
_PAGES = ("products", "sale", "account", "unsubscribe", "blog/winter-tips", "survey")
_ANSWERS = ("yes", "no", "very satisfied", "satisfied", "neutral", "2-3 times a month")


class _RecordMaker:
    """Builds one realistic record at a time from a target-seeded RNG."""

    def __init__(self, spec: ExportSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.block = _escaped_block(spec.seed)
        self.serial = 0
        self.small_only = False  # near the end of the budget: no more big messages
        self.address = (
            spec.target_id if spec.kind == "email" else f"person{spec.target_id}@example.nl"
        )

    def new_group(self) -> tuple[str, int]:
        """A group's record kind and how many records it holds."""
        if self.small_only:
            kind = self.rng.choice(_GROUP_KINDS[1:])
        else:
            kind = self.rng.choices(_GROUP_KINDS, _GROUP_WEIGHTS)[0]
        return kind, self.rng.randint(1, 40)

    def _timestamp(self) -> str:
        moment = _EPOCH + timedelta(seconds=self.rng.randrange(8 * 365 * 86400))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def record(self, kind: str) -> list[bytes]:
        """One record, as pieces (the bulk of a message is a slice of the shared block)."""
        self.serial += 1
        rng = self.rng
        if kind == "message":
            return self._message()
        if kind == "open":
            ip = f"{rng.randint(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"
            rec: dict[str, object] = {
                "type": "open",
                "timestamp": self._timestamp(),
                "ip": ip,
                "user_agent": rng.choice(_AGENTS),
            }
        elif kind == "click":
            rec = {
                "type": "click",
                "timestamp": self._timestamp(),
                "url": f"https://shop.example.nl/{rng.choice(_PAGES)}?utm_campaign=c{rng.randrange(900)}",
            }
        else:
            rec = {
                "type": "survey",
                "survey": rng.randint(1, 60),
                "completed": self._timestamp(),
                "answers": {f"q{i}": rng.choice(_ANSWERS) for i in range(1, rng.randint(2, 6))},
            }
        return [json.dumps(rec).encode()]

    def _message(self) -> list[bytes]:
        rng = self.rng
        when = self._timestamp()
        subject = rng.choice(_SUBJECTS)
        boundary = f"b1_{rng.getrandbits(64):016x}"
        msgid = f"<{rng.getrandbits(80):020x}.{self.serial}@mail.example.nl>"
        # Mostly newsletters of a few KB; now and then a message with a big attachment.
        lines = rng.randint(10, 300) if rng.random() < 0.93 else rng.randint(1000, 8000)
        lines = min(lines, _BLOCK_LINES)
        start = rng.randrange(_BLOCK_LINES - lines + 1)
        head = (
            f"Return-Path: <bounce-{self.serial}@mail.example.nl>\r\n"
            f"From: Example Shop <news@example.nl>\r\nTo: <{self.address}>\r\n"
            f"Subject: {subject}\r\nDate: {when}\r\nMessage-ID: {msgid}\r\n"
            f"MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        tail = f"--{boundary}--\r\n"
        envelope = json.dumps(
            {"type": "message", "sent": when, "subject": subject, "message_id": msgid}
        )
        first = envelope[:-1] + ', "mime": ' + json.dumps(head)[:-1]
        last = json.dumps(tail)[1:] + "}"
        body = self.block[start * _LINE : (start + lines) * _LINE]
        return [first.encode(), body, last.encode()]
