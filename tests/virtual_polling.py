"""A virtual platform for the readiness model: its files expire, its requests may be lost.

Shared by ``tests/test_scheduling.py`` (bounds on what the model costs) and
``benchmarks/readiness_model.py`` (the same runs, printed per phase).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from batch_export.run.scheduling import ReadinessModel

__all__ = ["Tally", "play_concurrently"]


@dataclass
class Tally:
    """What one synthetic run cost."""

    requests: int = 0
    exports: int = 0
    gone: int = 0
    #: the virtual time the last check was made at
    end: float = 0.0
    #: phase number -> [requests, exports] made in it (``play_concurrently``'s ``phase``)
    phases: dict[int, list[int]] = field(default_factory=dict)

    @property
    def per_export(self) -> float:
        """Requests (submits and checks) per saved export."""
        return self.requests / self.exports

    def count(self, at: float, phase: float | None, exported: bool) -> None:
        """One request made at ``at``; ``exported`` if it saved an export."""
        self.requests += 1
        self.exports += exported
        if phase is not None:
            row = self.phases.setdefault(int(at // phase), [0, 0])
            row[0] += 1
            row[1] += exported


def play_concurrently(
    model: ReadinessModel,
    n: int,
    *,
    low: float,
    high: float,
    expire: float,
    window: int = 30,
    rate: float = 200.0,
    seed: int = 1,
    forget: float = 0.0,
    phase: float | None = None,
) -> Tally:
    """Export ``n`` targets ``window`` at a time, submitted at ``rate``, on a virtual clock.

    Outcomes come back out of order and late: the checks of a whole window
    are in flight before the first answer is seen, as in a live run with
    ``--max-pending``. Preparation is uniform in ``low..high``; a ready file
    is gone ``expire`` seconds later; a share ``forget`` of requests is lost
    at a uniform moment before it would be ready. A request found gone is
    submitted again. ``phase``: also count requests per ``phase`` seconds.
    """
    rng = random.Random(seed)
    tally = Tally()
    # (when it is checked, seq, posted, ready, checks so far, last seen alive, lost at)
    due: list[tuple[float, int, float, float, int, float, float]] = []
    seq = 0
    submit_at = 0.0
    waiting = n
    now = 0.0

    def submit(at: float) -> None:
        nonlocal seq
        tally.count(at, phase, False)
        seq += 1
        ready = at + rng.uniform(low, high)
        # drawn only when asked for, so runs without forgetting keep their draws
        lost = at + (ready - at) * rng.random() if forget and rng.random() < forget else 1e300
        heapq.heappush(due, (at + model.delay(0, 0.0), seq, at, ready, 0, 0.0, lost))

    while waiting or due:
        while waiting and len(due) < window:
            submit_at = max(submit_at + 1.0 / rate, now)
            submit(submit_at)
            waiting -= 1
        now, _, posted, ready, checks, alive, lost = heapq.heappop(due)
        checks += 1
        age = now - posted
        if now >= ready + expire or now >= lost:
            model.record(checks, alive, age, "gone")
            tally.count(now, phase, False)
            tally.gone += 1
            waiting += 1
        elif now >= ready:
            model.record(checks, alive, age, "ready")
            tally.count(now, phase, True)
        else:
            model.record(checks, alive, age, "pending")
            tally.count(now, phase, False)
            seq += 1
            later = now + model.delay(checks, age)
            heapq.heappush(due, (later, seq, posted, ready, checks, age, lost))
    tally.end = now
    return tally
