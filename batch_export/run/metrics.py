"""``--metrics-file PATH``: the run in Prometheus text format, for node exporter's textfile collector.

``MetricsFile`` (an ``Observer``, ``tally.py``) rewrites the file every
``WRITE_INTERVAL`` seconds while the run works, when the pipeline ends, and
once more when the run's evidence is written (``finish``: the exit code and
how the run ended). Every series carries an ``out_dir`` label, so several
jobs can write files into one textfile directory without colliding::

    batch_export_targets{status="done|failed|pending|invalid"}   gauge, this input's targets (invalid: rows)
    batch_export_saved_bytes_total                              counter, bytes saved by this run
    batch_export_requests_total{endpoint="POST datarequest"}    counter, requests sent per endpoint
    batch_export_responses_total{code="429"}                    counter, answers per HTTP status
    batch_export_retries_total, _throttled_total, _overloaded_total, _outages_total,
    _reissued_total, _cut_downloads_total                       counters
    batch_export_save_rate, _request_pace, _rate_found          gauges, exports/s and requests/s
    batch_export_eta_seconds, batch_export_paused{reason}       gauges
    batch_export_run_start_time_seconds, _run_duration_seconds, _last_success_time_seconds
    batch_export_run_state{state="running|finished|stopped"}    gauge, 1 for the current state
    batch_export_exit_code                                      gauge, once the run has ended

The registry is the run's own (a fresh ``CollectorRegistry`` holding one
collector that reads the latest snapshot), never the process-wide default:
two runs in one process, or the tests, share nothing. The file names no
secret: counts, times, endpoints, HTTP statuses and the output directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .tally import ProgressSnapshot

__all__ = ["WRITE_INTERVAL", "MetricsFile"]

log = logging.getLogger(__name__)

#: seconds between rewrites during the run (node exporter reads the file when scraped)
WRITE_INTERVAL = 15.0

#: the client's counters that become ``batch_export_<name>_total``, with their help text
_COUNTERS = {
    "retries": "Requests retried after a transient failure.",
    "throttled": "Pauses after a 429 Too Many Requests.",
    "overloaded": "Pauses after the platform said it was overloaded.",
    "outages": "Times the platform became unreachable and every request was held.",
    "cut_downloads": "Downloads cut off midway and begun again.",
}
_STATES = ("running", "finished", "stopped")
_PAUSES = ("throttled", "outage")


class MetricsFile:
    """Writes the run's metrics to ``path`` atomically, owner-only, during and at the end."""

    def __init__(self, path: Path, *, out_dir: Path, interval: float | None = None) -> None:
        self.path = path
        self.interval = WRITE_INTERVAL if interval is None else interval
        self._collector = _RunCollector(str(out_dir.resolve()))
        self._registry = CollectorRegistry()
        self._registry.register(self._collector)
        self._failing: str | None = None

    def tick(self, snapshot: ProgressSnapshot) -> None:
        self._collector.update(snapshot)
        self._write()

    def close(self, snapshot: ProgressSnapshot) -> None:
        # The pipeline has ended; until ``finish`` says how, "stopped" is the
        # honest state (if the evidence cannot be written, finish never comes).
        self._collector.update(snapshot)
        self._collector.state = "stopped"
        self._write()

    def finish(self, summary: Mapping[str, Any]) -> None:
        """The run's summary is written: its counts, traffic and exit state, the last write."""
        self._collector.end(summary)
        self._write()

    def _write(self) -> None:
        """Write atomically and owner-only; a failure is said once, and the run goes on.

        ``write_to_textfile`` writes a temporary file next to its target and
        renames it into place (atomic), but creates it with the process's
        umask, typically 0644: readable by every local user. There is no
        mode argument, and changing the umask would change it for every
        thread of the process. So it writes into a private directory made
        next to the file (``mkdtemp``: 0700, nobody else can open what is
        inside), the result is made 0600 there, and renamed into place: the
        file appears complete and owner-only at once. (node exporter must
        then run as this user, or as root, to read it.)
        """
        try:
            staging = tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                staged = os.path.join(staging, self.path.name)
                write_to_textfile(staged, self._registry)
                os.chmod(staged, 0o600)
                os.replace(staged, self.path)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            problem = f"cannot write the metrics file {self.path}: {exc.strerror or exc}"
            if problem != self._failing:  # every 15 s the same warning would flood the log
                log.warning("%s; the run goes on", problem)
            self._failing = problem
            return
        self._failing = None

    def __repr__(self) -> str:
        return f"MetricsFile({str(self.path)!r}, interval={self.interval:g})"


class _RunCollector(Collector):
    """The metric families of one run, read from its latest snapshot (and summary, at the end)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.snapshot: ProgressSnapshot | None = None
        self.state = "running"
        self.exit_code: int | None = None
        self.targets: dict[str, int] = {}
        self.traffic: dict[str, Any] = {}
        self.duration = 0.0
        self.started: float | None = None
        self.last_success: float | None = None

    def update(self, snapshot: ProgressSnapshot) -> None:
        previous = self.snapshot.saved if self.snapshot is not None else 0
        if snapshot.saved > previous:
            # The tally keeps no time of the last save: a save since the last
            # write happened by now (to within WRITE_INTERVAL).
            self.last_success = snapshot.at
        self.snapshot = snapshot
        self.started = snapshot.at - snapshot.elapsed_seconds
        self.duration = snapshot.elapsed_seconds
        self.targets = {
            "done": snapshot.done,
            "failed": snapshot.failed,
            "pending": snapshot.remaining,
            "invalid": snapshot.invalid,
        }
        self.traffic = snapshot.traffic

    def end(self, summary: Mapping[str, Any]) -> None:
        """The manifest's counts (the authority), the client's final counts, the exit state."""
        counts = summary["counts"]
        self.targets = {
            status: int(counts[status]) for status in ("done", "failed", "pending", "invalid")
        }
        self.traffic = {
            **self.traffic,
            **{
                key: summary[key] for key in ("requests", "responses", *_COUNTERS) if key in summary
            },
        }
        self.duration = float(summary["elapsed_seconds"])
        self.exit_code = int(summary["exit_code"])
        stopped = summary.get("interrupted") is not None or summary.get("error") is not None
        self.state = "stopped" if stopped else "finished"

    def collect(self) -> Iterator[Metric]:
        where = [self.out_dir]
        targets = self._gauge(
            "targets", "Targets of this input by status (invalid: rows).", "status"
        )
        for status in ("done", "failed", "pending", "invalid"):
            targets.add_metric([*where, status], self.targets.get(status, 0))
        yield targets
        yield from self._traffic(where)
        snapshot = self.snapshot
        if snapshot is not None:
            yield self._counter(
                "saved_bytes", "Bytes of exports saved by this run.", snapshot.bytes_saved
            )
            yield self._counter(
                "reissued",
                "Data requests asked again after the platform lost them.",
                snapshot.reissued,
            )
            yield self._value(
                "save_rate", "Exports saved per second over the last minute.", snapshot.rate
            )
            yield self._value(
                "request_pace",
                "Requests per second the client may send now.",
                snapshot.request_rate,
            )
            if snapshot.rate_found is not None:
                yield self._value(
                    "rate_found",
                    "Highest requests per second the account accepted.",
                    snapshot.rate_found,
                )
            if snapshot.eta_seconds is not None and self.exit_code is None:
                yield self._value(
                    "eta_seconds",
                    "Seconds until every target is done at the current rate.",
                    snapshot.eta_seconds,
                )
            paused = self._gauge("paused", "1 while requests are held, by reason.", "reason")
            for reason in _PAUSES:
                paused.add_metric(
                    [*where, reason], float(snapshot.paused == reason and self.exit_code is None)
                )
            yield paused
        if self.started is not None:
            yield self._value(
                "run_start_time_seconds", "When the run started (Unix time).", self.started
            )
        yield self._value(
            "run_duration_seconds", "Seconds the run has taken so far.", self.duration
        )
        if self.last_success is not None:
            yield self._value(
                "last_success_time_seconds",
                "When this run last saved an export (Unix time).",
                self.last_success,
            )
        state = self._gauge(
            "run_state", "1 for the run's state: running, finished, or stopped.", "state"
        )
        for name in _STATES:
            state.add_metric([*where, name], float(name == self.state))
        yield state
        if self.exit_code is not None:
            yield self._value(
                "exit_code",
                "The run's exit code (0 ok, 1 incomplete, 2 error, 130/143 signal).",
                self.exit_code,
            )

    def _traffic(self, where: list[str]) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "batch_export_requests", "Requests sent, per endpoint.", labels=["out_dir", "endpoint"]
        )
        for endpoint, count in sorted(self.traffic.get("requests", {}).items()):
            requests.add_metric([*where, endpoint], count)
        yield requests
        responses = CounterMetricFamily(
            "batch_export_responses",
            "Answers received, per HTTP status.",
            labels=["out_dir", "code"],
        )
        for code, count in sorted(self.traffic.get("responses", {}).items()):
            responses.add_metric([*where, str(code)], count)
        yield responses
        for key, help_text in _COUNTERS.items():
            yield self._counter(key, help_text, self.traffic.get(key, 0))

    def _gauge(self, name: str, help_text: str, label: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"batch_export_{name}", help_text, labels=["out_dir", label])

    def _value(self, name: str, help_text: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"batch_export_{name}", help_text, labels=["out_dir"])
        family.add_metric([self.out_dir], value)
        return family

    def _counter(self, name: str, help_text: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(f"batch_export_{name}", help_text, labels=["out_dir"])
        family.add_metric([self.out_dir], value)
        return family
