"""When to ask whether a data request is ready: learnt, not fixed.

Each check costs one request from the account's budget, so the ideal is one
check per export, made just after the file is ready. The platform does not say
how long preparation takes, and it varies per person, so the model learns it
from outcomes.

For the k-th check of a request (k = 1, 2, 3) it keeps a delay ``t_k`` and
nudges it after every outcome at that level (a stochastic-approximation
quantile tracker): a check that finds the export ready shortens ``t_k`` a
little, one that finds the placeholder lengthens it more, so ``t_k`` settles
where a fraction ``targets[k]`` of checks succeed. The first check aims high
(88%: most exports then cost one check); later ones aim at the median, because
the requests still pending after a first check are a mix of near misses,
ready a moment later, and the long tail (people with years of mail): a
conservative second check would make every near miss wait as long as the
tail, which holds a ``--max-pending`` slot idle for nothing. Outcomes are all it needs —
no timestamps of the (unobservable) moment a file became ready, so the
estimate has no censoring bias. Beyond level 3, checks back off geometrically.
"""

from __future__ import annotations

import math
import random

__all__ = ["ReadinessModel"]


class ReadinessModel:
    """Learns the preparation-time distribution; answers "how long until the next check"."""

    levels = 3

    def __init__(
        self,
        *,
        initial_delay: float = 1.0,
        targets: tuple[float, float, float] = (0.88, 0.5, 0.5),
        step: float = 0.08,
        min_delay: float = 0.05,
        max_interval: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.targets = targets
        self.step = step
        self.min_delay = min_delay
        self.max_interval = max_interval
        # delay[k] is measured from the previous check (from submission for k = 0)
        self.delays = [initial_delay, initial_delay, 2 * initial_delay]
        self.observations = [0] * self.levels
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        delays = ", ".join(f"{d:.2f}s" for d in self.delays)
        return f"<ReadinessModel targets={self.targets} delays=[{delays}] n={self.observations}>"

    def delay(self, checks_done: int, elapsed: float) -> float:
        """Seconds from now until check number ``checks_done + 1``."""
        if checks_done < self.levels:
            base = self.delays[checks_done]
        else:
            base = max(elapsed * 0.5, self.delays[-1])
        # a little jitter so requests submitted together do not poll in lockstep
        jittered = base * self._rng.uniform(0.97, 1.03)
        return min(self.max_interval, max(self.min_delay, jittered))

    def observe(self, check_number: int, ready: bool) -> None:
        """Record the outcome of check ``check_number`` (1-based)."""
        level = check_number - 1
        if level >= self.levels:
            return
        self.observations[level] += 1
        # Robbins–Monro on log(delay): equilibrium where P(ready) == target.
        gradient = self.targets[level] - (1.0 if ready else 0.0)
        updated = self.delays[level] * math.exp(self.step * gradient)
        self.delays[level] = min(self.max_interval, max(self.min_delay, updated))

    def observe_expired(self, check_number: int) -> None:
        """Check ``check_number`` found the file already expired: it was ready long before.

        Missing a file costs a whole new request, so this halves the delay
        rather than nudging it.
        """
        level = min(check_number, self.levels) - 1
        if level >= 0:
            self.delays[level] = max(self.min_delay, self.delays[level] * 0.5)
