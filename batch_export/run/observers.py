"""Which progress observers a run has, from its options (``tally.py`` drives them)."""

from __future__ import annotations

from .options import RunOptions
from .progress import ProgressBars
from .tally import Observer

__all__ = ["observers_for"]


def observers_for(options: RunOptions) -> list[Observer]:
    """The bars on a terminal (``progress``), and whatever else the options ask for."""
    observers: list[Observer] = []
    if options.progress:
        observers.append(ProgressBars())
    return observers
