"""Line 1 of ``journal.jsonl``: which export a directory holds, in which format.

``{"format": "batch-export-journal", "version": 1, "kind": "profile",
"chain": "sha256", "created": ...}``. A run refuses a directory whose header
is another tool's, another version's or another kind's; ``"chain"`` says the
lines after it are hash-chained (``chain.py``; journals from before the chain
lack it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..durable import write_all
from ..errors import ConfigError
from .chain import CHAIN_ALGORITHM, chain_lines

__all__ = ["FORMAT", "VERSION", "check_header", "new_header", "write_header"]

FORMAT = "batch-export-journal"
VERSION = 1


def new_header(kind: str) -> dict[str, Any]:
    """The header of a new journal for exports of ``kind`` (``created`` is added when written)."""
    return {"format": FORMAT, "version": VERSION, "kind": kind, "chain": CHAIN_ALGORITHM}


def write_header(fd: int, header: dict[str, Any]) -> str | None:
    """Write and fsync line 1; the hash line 2 will name."""
    data, head = chain_lines([json.dumps(header) + "\n"], None)
    write_all(fd, data)
    os.fsync(fd)
    return head


def check_header(header: dict[str, Any], kind: str, path: Path) -> None:
    """Raise ConfigError unless ``header`` is this version's, for exports of ``kind``."""
    if header.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a batch-export journal; use an empty --out directory")
    if header.get("version") != VERSION:
        raise ConfigError(
            f"{path} was written by journal format version {header.get('version')}; "
            f"this batch-export reads version {VERSION}"
        )
    if header.get("kind") != kind:
        raise ConfigError(
            f"{path.parent} holds a {header.get('kind')} export; "
            f"use another --out directory for --kind {kind}"
        )
