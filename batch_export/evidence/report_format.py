"""Small HTML and number helpers for the report: every value passes ``e`` before it is shown.

IDs, file names and error messages come from input files and the platform,
so nothing reaches the page unescaped; the helpers here return markup that
is already safe to join.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable

__all__ = [
    "NOT_RECORDED",
    "cell",
    "duration",
    "e",
    "human_bytes",
    "number",
    "row",
    "short_sha",
    "table",
    "when",
]

#: what the report says for a value the archive's version did not record
NOT_RECORDED = "not recorded"


def e(value: object) -> str:
    """``value`` as text, escaped for HTML (quotes too: it may land in an attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def number(value: object) -> str:
    """An integer with thousands separators; anything else as it is (escaped)."""
    return f"{value:,}" if type(value) is int else e(value if value is not None else "–")


def human_bytes(size: int) -> str:
    """``size`` in decimal units (kB, MB, GB, TB), as the simulator and disks count them.

    The one byte format: the progress line and the stats log use it too.
    """
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def duration(seconds: object) -> str:
    """A run's length for people: ``2.3 s``, ``4 min 05 s``, ``1 h 02 min``."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return NOT_RECORDED
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def when(moment: float | None) -> str:
    """A Unix time as ISO 8601 UTC, or "not recorded"."""
    if moment is None:
        return NOT_RECORDED
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def short_sha(digest: object) -> str:
    """The first 12 hex digits of a sha256 (enough to tell files apart on paper)."""
    return e(digest[:12]) if isinstance(digest, str) and digest else NOT_RECORDED


def cell(markup: str, *, tag: str = "td", css: str = "", data: str = "") -> str:
    """One table cell around ``markup`` (already escaped); ``data`` an exact value for machines."""
    attributes = (f' class="{e(css)}"' if css else "") + (
        f' data-value="{e(data)}"' if data else ""
    )
    return f"<{tag}{attributes}>{markup}</{tag}>"


def row(cells: Iterable[str], *, css: str = "", **data: str) -> str:
    """A ``<tr>`` of ready cells; ``data`` becomes ``data-…`` attributes."""
    attributes = (f' class="{e(css)}"' if css else "") + "".join(
        f' data-{e(name)}="{e(value)}"' for name, value in data.items()
    )
    return f"<tr{attributes}>{''.join(cells)}</tr>"


def table(headings: Iterable[str], rows: Iterable[str], *, css: str = "") -> str:
    """A table with a heading row (``headings`` are plain text) and ready rows."""
    head = "".join(f'<th scope="col">{e(text)}</th>' for text in headings)
    attributes = f' class="{e(css)}"' if css else ""
    return (
        f"<table{attributes}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
