"""Finding an account's unknown rate limit from what the platform answers.

The platform never says its limit; it only refuses (a 429, or a 503/504 from
its overloaded load balancer) when a request came too fast. ``LimitSearch``
turns those refusals and the busy seconds without one into a pace:

* **slow start, but not slowly**: it starts at ``initial_rate`` (or at a
  remembered rate) and doubles every ``step_seconds`` of busy time until the
  first refusal, so a limit of 100/s is reached in about two seconds, not in
  four of crawling up from 10/s;
* **charged to the send rate**: every refusal is charged to the pace at which
  *its* request was sent (the limiter records it when it grants the slot),
  not to the pace now. Answers to requests sent at a pace already known to
  be too fast carry no news and change nothing, so doubling quickly cannot
  make one overshoot count twice;
* **bisection biased low**: after the first refusal the limit lies between
  the fastest pace that ran clean (``low``) and the slowest refused one
  (``high``). A probe above the limit costs a refusal and the server's
  Retry-After pause for everyone; one below costs only a few percent for a
  couple of seconds, so probes sit below the midpoint;
* **settled at a confirmed pace**: once ``high / low`` is within
  ``precision`` it runs at ``low``, which ran clean for ``confirm_seconds``,
  and after ``reprobe_seconds`` tries higher again in case the limit rose.

It assumes nothing about the platform's bucket (token bucket, fixed or
sliding window): only that a pace which drew a refusal was too fast and one
that ran clean for a few busy seconds was not.
"""

from __future__ import annotations

__all__ = ["LimitSearch"]


class LimitSearch:
    """Finds an unknown rate limit: fast doubling, then a low-biased bisection."""

    initial_rate = 20.0
    min_rate = 0.5
    #: busy seconds between doublings before the first refusal
    step_seconds = 0.5
    confirm_seconds = 2.0
    precision = 1.05
    #: where between low and high the next probe goes (0.5 = the midpoint)
    probe_bias = 0.4
    reprobe_seconds = 60.0
    #: how far above the settled pace a re-probe starts (then it doubles again)
    reprobe_factor = 1.08
    #: a refused pace at or under ``low``: the new ``low``, as a share of it
    fall_factor = 0.8

    def __init__(self, start: float | None = None) -> None:
        self.rate = max(self.min_rate, start) if start else self.initial_rate
        self.low: float | None = None
        self.high: float | None = None
        self._confirmed = False  # whether ``low`` ran clean (else it is a guess)
        self._clean = 0.0
        self._settled_for = 0.0
        if start:
            # A remembered pace is not trusted blindly: it becomes ``low`` only
            # after it runs clean for confirm_seconds (then the search is
            # settled); a refusal instead re-opens the search below it.
            self.high = self.rate * self.precision

    def __repr__(self) -> str:
        return f"<LimitSearch rate={self.rate:.1f} low={self.low} high={self.high}>"

    @property
    def settled(self) -> bool:
        """Whether the search has converged (it runs at ``low`` until a re-probe)."""
        return (
            self._confirmed
            and self.low is not None
            and self.high is not None
            and self.high <= self.low * self.precision
        )

    def busy(self, seconds: float) -> bool:
        """``seconds`` passed with callers queued for slots and nothing refused.

        Returns True when the search just settled (the pace is worth remembering).
        """
        if self.high is None:  # before the first refusal: keep doubling
            self._clean += seconds
            if self._clean >= self.step_seconds:
                self._clean = 0.0
                self.low, self._confirmed = self.rate, True
                self.rate *= 2.0
            return False
        self._clean += seconds
        was_settled = self.settled  # a local: mypy would narrow the property itself
        if was_settled:
            self._settled_for += seconds
            if self._settled_for >= self.reprobe_seconds:
                self._settled_for = 0.0
                self._clean = 0.0
                assert self.low is not None
                # Re-open the search upward: if the limit rose, doubling finds it.
                self.high = None
                self.rate = self.low * self.reprobe_factor
            return False
        if self._clean < self.confirm_seconds:
            return False
        self._clean = 0.0
        self.low, self._confirmed = self.rate, True
        just_settled = self.settled
        if just_settled:
            self._settled_for = 0.0
        else:
            self.rate = self._next_probe()
        return just_settled

    def throttled(self, sent_rate: float | None = None) -> bool:
        """A refusal for a request sent at ``sent_rate`` (None: the pace now).

        Returns whether it was news: a refusal of a pace at or above one
        already refused changes nothing.
        """
        sent = self.rate if sent_rate is None else sent_rate
        if self.high is not None and sent >= self.high:
            return False
        self.high = sent
        self._clean = 0.0
        self._settled_for = 0.0
        if self.low is not None and self._confirmed and self.low < sent:
            self.rate = self.low if self.settled else self._next_probe()
            return True
        # Nothing under the refused pace is known to work: a confirmed low
        # that was refused was a bucket draining (or the limit fell), so step
        # down a little; a guess that was refused, so halve it. Then try the
        # new guess itself, which becomes ``low`` only once it runs clean.
        self.low = sent * (self.fall_factor if self._confirmed else 0.5)
        self._confirmed = False
        self.rate = max(self.min_rate, self.low)
        self.low = self.rate
        return True

    def _next_probe(self) -> float:
        assert self.low is not None and self.high is not None
        return self.low + (self.high - self.low) * self.probe_bias
