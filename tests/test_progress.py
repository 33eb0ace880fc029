"""Progress that tells the truth: one tally, read the same way by the bars, the ETA and the summary."""

from __future__ import annotations

import io
import logging

from batch_export.run.progress import ProgressBars, format_summary, status_line
from batch_export.run.tally import RunTally


class Clock:
    """A hand-moved clock for the tally."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_saved_failed_and_invalid_are_counted_apart() -> None:
    """A failure advances 'failed' only; 'saved' counts saved exports; invalid rows are not targets."""
    tally = RunTally(Clock())
    tally.start(total=3, already_done=0, invalid=2, resumed=0)
    tally.submitted()
    tally.ready("1")
    tally.saved("1", 100)
    tally.failed("2")
    snapshot = tally.snapshot()
    assert (snapshot.saved, snapshot.failed, snapshot.invalid) == (1, 1, 2)
    assert snapshot.remaining == 1 and snapshot.bytes_saved == 100 and snapshot.downloading == 0


def test_a_download_begun_twice_is_one_file_in_flight() -> None:
    """A cut download begun again is still one file downloading, gone once saved."""
    tally = RunTally(Clock())
    tally.start(total=1, already_done=0, invalid=0, resumed=1)
    tally.ready("7")
    tally.ready("7")
    assert tally.snapshot().downloading == 1
    tally.saved("7", 5)
    assert tally.snapshot().downloading == 0


def test_the_eta_starts_from_the_allowed_pace_and_follows_the_measured_rate() -> None:
    """No save yet: the ETA is remaining / (pace / 2); after many saves, remaining / measured rate."""
    clock = Clock()
    tally = RunTally(clock)
    tally.start(total=1_000, already_done=0, invalid=0, resumed=0)
    tally.watch(pace=lambda: 20.0, paused=lambda: None, found=lambda: None)
    assert tally.snapshot().eta_seconds == 100.0  # 1000 / (20 / 2)
    for second in range(40):
        clock.now += 1
        for n in range(4):
            tally.saved(f"{second}-{n}", 10)
        tally.snapshot()
    snapshot = tally.snapshot()
    assert snapshot.rate == 4.0
    assert snapshot.eta_seconds == (1_000 - 160) / 4.0
    assert snapshot.bytes_rate == 40.0


def test_the_rate_is_over_the_recent_window_only() -> None:
    """A burst of saves long ago does not hold the rate up: it is measured over the last minute."""
    clock = Clock()
    tally = RunTally(clock)
    tally.start(total=10_000, already_done=0, invalid=0, resumed=0)
    for n in range(600):
        tally.saved(str(n), 1)
    for _ in range(120):
        clock.now += 1
        tally.snapshot()
    assert tally.snapshot().rate == 0.0


def test_the_status_line_says_when_requests_are_held() -> None:
    """A pause (429/overload, or an outage) shows on the status line with the pace and the limit found."""
    tally = RunTally(Clock())
    tally.start(total=5, already_done=0, invalid=0, resumed=0)
    tally.watch(pace=lambda: 12.5, paused=lambda: "throttled", found=lambda: 25.0)
    line = status_line(tally.snapshot())
    assert "paused: throttled" in line and "pace 12.5 req/s" in line and "limit found 25" in line


def test_log_lines_go_above_the_bars_and_the_bars_leave_nothing_behind() -> None:
    """While bars are drawn a log line is written whole; closing the bars restores the handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("batch_export")
    saved_handlers = logger.handlers[:]
    logger.handlers[:] = [handler]
    try:
        bars = ProgressBars(stream)
        tally = RunTally(Clock())
        tally.start(total=4, already_done=1, invalid=0, resumed=0)
        bars.tick(tally.snapshot())
        logging.getLogger("batch_export.test").warning("a warning")
        bars.close(tally.snapshot())
        assert handler.stream is stream
    finally:
        logger.handlers[:] = saved_handlers
    text = stream.getvalue()
    assert "resuming: 1 already done, 3 to go" in text
    assert "a warning\n" in text


def test_the_summary_of_a_stopped_run_says_how_far_it_got() -> None:
    """After SIGINT the summary says 'stopped by SIGINT after 32 of 300' and how to resume."""
    summary = {
        "version": "1",
        "elapsed_seconds": 5.9,
        "interrupted": "SIGINT",
        "counts": {"total": 300, "done": 32, "failed": 0, "invalid": 0, "pending": 268, "bytes": 0},
        "responses": {},
        "retries": 0,
        "requests_total": 70,
    }
    text = format_summary(summary)
    assert "stopped by SIGINT after 32 of 300 targets" in text
    assert "rerun the same command to resume" in text
    assert not text.startswith("batch-export 1: 300 targets in")
