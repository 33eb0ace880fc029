"""Which progress observers a run has, from its options (``tally.py`` drives them).

The bars on a terminal (``progress.py``), the ``--stats-interval`` log lines
(``stats_log.py``) and the ``--metrics-file`` (``metrics.py``) each read the
same ``ProgressSnapshot``, at their own interval.
"""

from __future__ import annotations

from .callback import progress_callbacks
from .options import RunOptions
from .progress import ProgressBars
from .stats_log import StatsLog
from .tally import Observer

__all__ = ["observers_for"]


def observers_for(options: RunOptions) -> list[Observer]:
    """The bars on a terminal (``progress``), and whatever else the options ask for."""
    observers: list[Observer] = []
    if options.progress:
        observers.append(ProgressBars())
    if options.stats_interval > 0:
        observers.append(StatsLog(options.stats_interval))
    if options.metrics_file is not None:
        from .metrics import MetricsFile  # prometheus-client (~10 MB) only when asked for

        observers.append(MetricsFile(options.metrics_file, out_dir=options.out_dir))
    observers.extend(progress_callbacks(options))  # the Python API's on_progress
    return observers
