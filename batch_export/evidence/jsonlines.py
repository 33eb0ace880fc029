"""One rule for reading a JSON-lines file of the archive: a line is an object, or it is not.

The journal's chain walk, the seal's pass over the manifest, ``verify`` and
the report all read lines this way, so they agree on which lines count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["json_object", "numbered_objects"]


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    """The line as a JSON object, or None when it is not JSON or not an object."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def numbered_objects(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """``(line number, object or None)`` for each non-blank line of ``path``, 1-based."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, json_object(line)
