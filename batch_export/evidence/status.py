"""``batch-export status``: what a run has done so far, from its journal alone.

Read-only and lock-free: the journal is append-only, so reading it while a
run appends is safe (a line being written is simply not counted yet). Works
during a run and after it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .replay import DONE, FAILED, JOURNAL_NAME, NEW, SUBMITTED, SUBMITTING, TargetState, replay

__all__ = ["collect_status", "format_status"]

#: throughput is measured over this many most recent seconds of saved files
RATE_WINDOW = 300.0


def collect_status(out_dir: Path, now: float | None = None) -> dict[str, Any]:
    """Counts by status, open requests, top failure reasons, throughput and ETA."""
    path = out_dir / JOURNAL_NAME
    if not path.is_file():
        raise ConfigError(
            f"{out_dir} has no {JOURNAL_NAME}; is it a batch-export output directory?"
        )
    states: dict[str, TargetState] = {}
    done_times: list[float] = []
    runs: list[dict[str, Any]] = []
    # A last line without its newline is being written right now (or torn by
    # a crash): not counted yet, and no cause for alarm. Damaged lines are.
    header, _, damage = replay(path, states, done_times=done_times, runs=runs)
    header = header or {}
    last_run = runs[-1] if runs else {}
    counts = Counter(state.status for state in states.values())
    failures = Counter(
        (state.error or "unknown") for state in states.values() if state.status == FAILED
    )
    now = time.time() if now is None else now
    recent = [t for t in done_times if now - t <= RATE_WINDOW]
    span = (now - min(recent)) if recent else 0.0
    rate = len(recent) / span if span > 0 else 0.0
    total = int(last_run.get("targets", len(states)))
    done = counts[DONE]
    remaining = max(0, total - done - counts[FAILED])
    return {
        "directory": str(out_dir),
        "kind": header.get("kind"),
        "targets": total,
        "invalid_rows": int(last_run.get("invalid", 0)),
        "done": done,
        "failed": counts[FAILED],
        "open_requests": counts[SUBMITTED],
        "submitting": counts[SUBMITTING],
        "not_started": max(0, total - len(states)) + counts[NEW],
        "remaining": remaining,
        "bytes": sum(s.bytes for s in states.values() if s.status == DONE),
        "reissued": sum(s.reissued for s in states.values()),
        "ambiguous_submits": sum(s.ambiguous for s in states.values()),
        "top_failures": [{"reason": r, "count": c} for r, c in failures.most_common(5)],
        "exports_per_second": round(rate, 3),
        "eta_seconds": round(remaining / rate) if rate > 0 and remaining else None,
        "last_run_started": last_run.get("ts"),
        "last_activity": max(done_times) if done_times else None,
        "damaged_lines": damage.lines,
        "damaged_count": damage.count,
        "journal_damage": damage.describe(),
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as a short human-readable block."""
    lines = [
        f"{status['directory']}: {status['kind']} export",
        f"  targets        {status['targets']:>9}",
        f"  invalid rows   {status['invalid_rows']:>9}",
        f"  done           {status['done']:>9}",
        f"  failed         {status['failed']:>9}",
        f"  open requests  {status['open_requests']:>9}",
        f"  remaining      {status['remaining']:>9}",
    ]
    if status["exports_per_second"]:
        eta = status["eta_seconds"]
        lines.append(
            f"  throughput     {status['exports_per_second']:>9.2f}/s"
            + (f"   ETA {eta // 3600}h{eta % 3600 // 60:02d}m{eta % 60:02d}s" if eta else "")
        )
    if status.get("journal_damage"):
        lines.append(f"  warning: {status['journal_damage']}")
    if status["top_failures"]:
        lines.append("  most common failures:")
        lines.extend(f"    {f['count']:>6}  {f['reason']}" for f in status["top_failures"])
    return "\n".join(lines)
