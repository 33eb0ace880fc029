"""The reader's plumbing: the file opened, its bytes hashed as read, the delimiter sniffed, the default dedupe."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import typing

from ..errors import InputError

__all__ = [
    "DELIMITERS",
    "SNIFF_BYTES",
    "SNIFF_LINES",
    "Digesting",
    "SetDedupe",
    "open_file",
    "sniff_delimiter",
]


class Digesting(io.RawIOBase):
    """A read-only view of a binary stream that hashes and counts every byte read through it.

    Closing it leaves the stream open: its owner (``TargetReader.close``)
    decides, as stdin belongs to the caller.
    """

    def __init__(self, stream: typing.BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: typing.Any) -> int:
        data = self._stream.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self.digest.update(data)
        self.size += count
        return count


SNIFF_BYTES = 16 * 1024
SNIFF_LINES = 200
DELIMITERS = (",", ";", "\t")


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter among , ; TAB that splits the sample most consistently.

    Counting fields per record (with quotes honoured) is more robust than
    csv.Sniffer, which guesses from character frequencies and is easily fooled
    by commas inside names. A file with one column has no delimiter; any will
    do, so a comma is returned.
    """
    best: tuple[float, int] = (0.0, 1)
    choice = ","
    for delimiter in DELIMITERS:
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


class SetDedupe:
    """The default dedupe: a set of the IDs seen."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, target_id: str) -> bool:
        if target_id in self._seen:
            return False
        self._seen.add(target_id)
        return True


def open_file(path: str) -> typing.BinaryIO:
    """``path`` opened for reading bytes, or an InputError that says why not."""
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
