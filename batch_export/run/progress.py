"""Progress bars on stderr while a run works, and the end-of-run summary text.

Bars are tqdm's, on stderr only (stdout carries data); the CLI switches them
off when stderr is not a terminal or with ``--no-progress``. ``NullProgress``
has the same methods and does nothing, so the pipeline never checks.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["NullProgress", "Progress", "format_summary"]


class NullProgress:
    """Progress reporting switched off."""

    def start(self, *, total: int, already_done: int, invalid: int) -> None: ...
    def submitted(self) -> None: ...
    def ready(self) -> None: ...
    def saved(self, size: int) -> None: ...
    def failed(self) -> None: ...
    def reissued(self) -> None: ...
    def close(self) -> None: ...


class Progress(NullProgress):
    """tqdm bars: submitted, ready (being downloaded), saved (rate and ETA), failed.

    Each bar counts its own event: "saved" only exports saved, "failed" only
    targets that failed for good (with the re-requests after expiry beside it).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bars: list[tqdm[Any]] = []

    def start(self, *, total: int, already_done: int, invalid: int) -> None:
        todo = total - already_done
        # leave=False: the bars clear themselves at the end and the summary takes their place
        common: dict[str, Any] = {
            "file": self._stream,
            "dynamic_ncols": True,
            "mininterval": 0.5,
            "leave": False,
        }
        self._submitted = tqdm(total=todo, desc="submitted", unit="req", position=0, **common)
        self._ready = tqdm(total=todo, desc="ready    ", unit="file", position=1, **common)
        self._saved = tqdm(total=todo, desc="saved    ", unit="file", position=2, **common)
        self._failed = tqdm(
            desc="failed   ", unit="", position=3, bar_format="{desc}: {n_fmt}{postfix}", **common
        )
        self._bars = [self._submitted, self._ready, self._saved, self._failed]
        self._reissued = 0
        if already_done or invalid:
            self._saved.write(
                f"resuming: {already_done} already done, {todo} to go"
                + (f", {invalid} invalid rows" if invalid else ""),
                file=self._stream,
            )

    def submitted(self) -> None:
        self._submitted.update()

    def ready(self) -> None:
        self._ready.update()

    def saved(self, size: int) -> None:
        self._saved.update()

    def failed(self) -> None:
        self._failed.update()

    def reissued(self) -> None:
        self._reissued += 1
        self._failed.set_postfix_str(f"re-requested after expiry: {self._reissued}")

    def close(self) -> None:
        for bar in self._bars:
            bar.close()
        if self._bars:
            self._stream.write("\r")  # the cleared bars leave the cursor mid-line
        self._bars = []


def format_summary(summary: dict[str, Any]) -> str:
    """The one-screen, human summary printed to stderr at the end of a run."""
    counts = summary["counts"]
    size = counts.get("bytes", 0)
    lines = [
        f"batch-export {summary['version']}: {counts['total']} targets in {summary['elapsed_seconds']:.1f}s",
        f"  done     {counts['done']:>9}   ({_human_bytes(size)})",
        f"  failed   {counts['failed']:>9}",
        f"  invalid  {counts['invalid']:>9}",
    ]
    if counts.get("pending"):
        lines.append(f"  pending  {counts['pending']:>9}   (rerun the same command to resume)")
    pushback = [f"429s: {summary['responses'].get('429', 0)}"]
    if summary.get("overloaded"):
        pushback.append(f"overloaded: {summary['overloaded']}")
    if summary.get("outages"):
        pushback.append(f"outages: {summary['outages']}")
    pushback.append(f"retries: {summary['retries']}")
    lines.append(f"  requests {summary['requests_total']:>9}   ({', '.join(pushback)})")
    if summary.get("interrupted"):
        lines.append(f"  stopped by {summary['interrupted']}; rerun the same command to resume")
    if summary.get("error"):
        lines.append(f"  stopped: {summary['error']}")
    return "\n".join(lines)


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
