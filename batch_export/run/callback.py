"""The Python API's ``on_progress``: a caller's function as a progress ``Observer``.

``Ticker`` (``tally.py``) calls it with a ``ProgressSnapshot`` every
``progress_interval`` seconds while the pipeline runs and once when it has
ended, and logs and skips a call that raises, so a broken callback never
stops a run.
"""

from __future__ import annotations

from collections.abc import Callable

from .options import RunOptions
from .tally import Observer, ProgressSnapshot

__all__ = ["ProgressCallback", "progress_callbacks"]


class ProgressCallback:
    """Hands every snapshot, the final one included, to ``call``."""

    def __init__(self, call: Callable[[ProgressSnapshot], None], interval: float) -> None:
        self.call = call
        self.interval = interval

    def tick(self, snapshot: ProgressSnapshot) -> None:
        self.call(snapshot)

    def close(self, snapshot: ProgressSnapshot) -> None:
        self.call(snapshot)

    def __repr__(self) -> str:
        return f"ProgressCallback({self.call!r}, interval={self.interval})"


def progress_callbacks(options: RunOptions) -> list[Observer]:
    """The observer for ``options.on_progress``, if the options have one."""
    if options.on_progress is None:
        return []
    return [ProgressCallback(options.on_progress, options.progress_interval)]
