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
* **an estimate from the first refusal**: when it comes, the limiter knows
  how many slots it granted over the last second; less one burst, that is
  the pace the platform took. The search restarts a little under it
  (``estimate_share``), with a soft ceiling a little over it. Every refusal
  costs the server's Retry-After pause for everyone, so a bisection that
  probes above the limit four or five times is what this avoids;
* **a creep under the ceiling**: every ``confirm_seconds`` of busy time
  without a refusal the pace that ran becomes ``low`` and the next is
  ``creep`` higher, never above ``high / precision``. A refusal above ``low``
  makes ``high`` hard and goes back to ``low`` in smaller steps; one at or
  under ``low`` (a token bucket hides a pace a little over its rate for
  burst / excess seconds, or the limit fell) steps down; a guess refused
  twice goes to what the platform took over the last second;
* **the bucket fit** (``bucket_fit.SendTimeline``): from the second refusal
  on, the times every request left and was refused say which token-bucket
  rates could have answered so; the first doubling's steep overshoot and the
  creep's slow one drain a bucket differently, so together they leave a band
  about a percent wide. When the band lies above where the refused paces'
  rule put the pace, or is narrow and close under the refused pace, the pace
  goes to its low end (a little over it while the band is wide: clean
  running narrows it) and is settled there. A wide band under the rule is
  not trusted: requests reach the platform a little after they leave, some
  in bunches, and a fit misled by that must not drag the pace down. Nor is
  a narrow band of a deep bucket before a pace that ran clean is refused:
  a fixed window fits one under its limit. A platform that is not a token
  bucket fits nothing, or fits low, and is left to the creep;
* **settled at a confirmed pace**: once ``high / low`` is within
  ``precision`` it runs at ``low``, and after ``reprobe_seconds`` (sooner
  under a soft ceiling nobody refused) creeps higher again, doubling once it
  passes ``reprobe_ceiling`` unrefused: the limit rose.

It assumes little about the platform's bucket (token bucket, fixed or
sliding window): a pace that drew a refusal was too fast and one that ran
clean for a few busy seconds probably was not; the estimate only sets where
the creep starts.
"""

from __future__ import annotations

from .bucket_fit import SendTimeline

__all__ = ["LimitSearch"]


class LimitSearch:
    """Finds an unknown rate limit: fast doubling, then a creep up under the refused pace."""

    initial_rate = 20.0
    min_rate = 0.5
    #: busy seconds at a pace before it counts as working (and the next step is taken)
    step_seconds = 0.5
    #: busy seconds at a pace under a refused one before it counts as working: a
    #: token bucket hides a pace a little over its rate for burst / excess seconds,
    #: and a fixed one-second window of L a pace P > L for up to 2L/P seconds
    #: (the rest of one window, part of the next: at 1.0, 163/s on 100/s
    #: passed). 2.0 would catch it all, but the creep is what recovers from
    #: random refusals: at 2.0 a 2 % share of them held the pace at 9.6 req/s.
    confirm_seconds = 1.5
    #: the first creep step after a refusal, as a factor (it shrinks after each refusal)
    creep = 1.05
    #: settled once the confirmed pace is within this factor of the refused one
    precision = 1.05
    #: a settled search looks higher again after this many busy seconds
    reprobe_seconds = 60.0
    #: the same when it settled under an estimated ceiling, not a refused pace
    soft_reprobe_seconds = 1.5
    #: how far above the settled pace a re-probe may creep before it doubles again
    reprobe_ceiling = 1.25
    #: after the first refusal, the search restarts at this share of the accepted pace
    estimate_share = 0.96
    #: ... and takes this multiple of the accepted pace as the refused one
    estimate_ceiling = 1.1
    #: a refused pace at or under a confirmed ``low``: the new ``low``, as a share of it
    fall_factor = 0.95
    #: the same for a refused guess (an estimate, or a remembered pace)
    guess_fall = 0.85
    #: the smallest creep step
    min_creep = 1.02
    #: a fitted range this narrow (high / low) is settled: the pace is its low end
    fit_precision = 1.02
    #: while the fitted range is wider, the pace is this far from its low end to its high
    fit_reach = 0.3
    #: a band under the refused paces' rule is trusted only this narrow (high / low) ...
    trusted_width = 1.05
    #: ... and at least this share of the refused pace
    trusted_floor = 0.85
    #: ... and, unless a pace that ran clean was refused, a bucket of at most
    #: this many seconds of its rate (a deeper one may be a fixed window)
    shallow_burst_seconds = 0.3

    def __init__(self, start: float | None = None) -> None:
        self.rate = max(self.min_rate, start) if start else self.initial_rate
        self.low: float | None = None
        self.high: float | None = None
        self._confirmed = False  # whether ``low`` ran clean (else it is a guess)
        self._falling = False  # whether ``low`` is a refused guess stepped down
        self._creep = self.creep
        self._clean = 0.0
        self._settled_for = 0.0
        self._reprobing = False
        self._soft = False  # whether ``high`` is an estimate rather than a refused pace
        #: what was sent when, and which requests were refused: the bucket fit's evidence
        self.timeline = SendTimeline()
        self.fitted: tuple[float, float] | None = None  # the rates a token bucket fits
        if start:
            # A remembered pace is not trusted blindly: it counts as working
            # only once it ran clean (then the search is settled); a refusal
            # instead re-opens the search below it.
            self.high = self.rate * self.precision

    def __repr__(self) -> str:
        return f"<LimitSearch rate={self.rate:.1f} low={self.low} high={self.high}>"

    @property
    def settled(self) -> bool:
        """Whether the search has converged (it runs at ``low`` until a re-probe)."""
        if self.fitted is not None:
            return self.fitted[1] <= self.fitted[0] * self.fit_precision
        return (
            self._confirmed
            and self.low is not None
            and self.high is not None
            and self.high <= self.low * self.precision
        )

    def busy(self, seconds: float, now: float | None = None) -> bool:
        """``seconds`` passed (until ``now``) with callers queued for slots and nothing refused.

        Returns True when the search just settled (the pace is worth remembering).
        """
        self._clean += seconds
        if self.fitted is not None and now is not None:
            return self._busy_fitted(seconds, now)
        was_settled = self.settled  # a local: mypy would narrow the property itself
        if was_settled:
            self._settled_for += seconds
            # Settled under a guessed ceiling (no refusal near it): look again soon.
            wait = self.soft_reprobe_seconds if self._soft else self.reprobe_seconds
            if self._settled_for >= wait:
                self._reprobe()
            return False
        if self._clean < (self.step_seconds if self.high is None else self.confirm_seconds):
            return False
        self._clean = 0.0
        self.low, self._confirmed, self._falling = self.rate, True, False
        if self.high is None:  # nothing refused yet: double
            self.rate *= 2.0
            return False
        if self.settled:
            self._settled_for = 0.0
            if self._reprobing:  # crept to the re-probe's ceiling unrefused: the limit rose
                self._reprobing = False
                self.high = None
                self.rate *= 2.0
                return False
            return True
        self.rate = min(self.rate * self._creep, self.high / self.precision)
        if self.rate <= self.low:  # the ceiling is within precision: that is settled
            self.rate = self.low
            self.high = self.low * self.precision
            return not self._reprobing
        return False

    def _busy_fitted(self, seconds: float, now: float) -> bool:
        """Clean running under a fitted range: every ``confirm_seconds`` it narrows the range."""
        assert self.fitted is not None
        if self.settled:
            self._settled_for += seconds
            if self._settled_for >= self.reprobe_seconds:
                # The fit says where the limit was; it may have risen since.
                self.fitted = None
                self._confirmed = True
                self._reprobe()
            return False
        if self._clean < self.confirm_seconds:
            return False
        self._clean = 0.0
        low, high = self.fitted
        fit = self.timeline.fit(low * 0.9, high * 1.1, now)
        if fit is None:
            return False
        # Evidence only accumulates: the range can only narrow (its scan may
        # have stopped at an edge of the window it was given).
        fit = (max(low, fit[0]), min(high, fit[1]))
        if fit[0] >= fit[1]:
            return False
        self._apply_fit(fit)
        if fit[1] <= fit[0] * self.fit_precision:  # settled just now
            self._settled_for = 0.0
            return True
        return False

    def _apply_fit(self, fit: tuple[float, float]) -> None:
        """Run just over the low end of the fitted rates (at it, once they are narrow)."""
        low, high = fit
        self.fitted = fit
        self.low, self._confirmed, self._falling = low, True, False
        if high <= low * self.fit_precision:
            self.rate = low
        else:
            self.rate = low + self.fit_reach * (high - low)
        self.high = max(high, self.rate * self.fit_precision)

    def throttled(
        self,
        sent_rate: float | None = None,
        accepted: float | None = None,
        sent_at: float | None = None,
        now: float | None = None,
    ) -> bool:
        """A refusal for a request sent at ``sent_rate`` (None: the pace now), at ``sent_at``.

        ``accepted`` is the pace the platform accepted over the last second,
        if known. ``sent_at`` and ``now`` (the limiter's clock) put it on the
        timeline the bucket fit reads. Returns whether the refusal was news:
        one of a pace at or above one already refused changes nothing.
        """
        sent = self.rate if sent_rate is None else sent_rate
        if sent_at is not None:
            self.timeline.unsent(sent_at)
        if self.high is not None and sent >= self.high:
            return False
        # Refused at a pace that had run clean: only a draining bucket does that.
        at_clean_pace = self._confirmed and self.low is not None and sent <= self.low
        self._by_paces(sent, accepted)
        if sent_at is not None and now is not None:
            self._raise_by_fit(sent, sent_at, now, at_clean_pace)
        return True

    def _by_paces(self, sent: float, accepted: float | None) -> None:
        """The refused paces' rule: where the search goes after a refusal at ``sent``."""
        if self.high is None and self.low is not None and accepted:
            # The first refusal while doubling: how long the pace ran before it
            # tells where the limit is (quickly: far under it), and so does the
            # pace the platform took over the last second. Start just under that.
            self.high = min(sent, accepted * self.estimate_ceiling)
            self._soft = self.high < sent
            self._clean = 0.0
            # Not under the pace that ran clean before the last doubling,
            # less a little (a small bucket refuses the doubled pace at once,
            # so the last second's count undersells the limit).
            self.low = max(
                self.min_rate,
                min(sent, accepted) * self.estimate_share,
                min(self.low * self.fall_factor, self.high / self.precision),
            )
            self._confirmed = False
            self.rate = self.low
            return
        self.high = sent
        self._soft = False
        self._clean = 0.0
        self._settled_for = 0.0
        self._reprobing = False
        if self.low is not None and self._confirmed and self.low < sent:
            # Back to the fastest pace that ran clean, and creep again, in smaller steps.
            self._creep = max(self.min_creep, self._creep**0.5)
            self.rate = self.low
            return
        # Nothing under the refused pace is known to work. A confirmed low
        # that was refused was a bucket draining (or the limit fell a little):
        # step down a little. A guess refused once: step down more; refused
        # again, the limit is lower still: go under what the platform took
        # (or halve, when that is not known).
        if self._confirmed:
            factor = self.fall_factor
        elif self._falling and not accepted:
            factor = 0.5
        else:
            factor = self.guess_fall
        low = sent * factor
        if self._falling and accepted:
            # Refused again: what the platform took over the last second says
            # how far (a limit far lower shows there at once; halving instead
            # took a fixed window's 113/s to 56/s, then 17 s to creep back).
            low = min(low, accepted * self.estimate_share)
        self.low = max(self.min_rate, low)
        self._falling = not self._confirmed
        self._confirmed = False
        self.rate = self.low

    def _raise_by_fit(self, sent: float, sent_at: float, now: float, at_clean_pace: bool) -> None:
        """After the paces' rule: if the bucket fit says the limit is higher, go there.

        The fit only ever raises the pace. Its evidence is when requests left
        the client, and the platform sees them a little later, some in bunches
        (submits waiting on one journal commit): a fit that undersells the
        limit must not drag the pace under what the refused paces allow.
        """
        self.timeline.refused(sent_at, now)
        fit = self.timeline.fit(max(self.min_rate, sent / 4), sent * 1.05, now)
        # Under the rule's pace, only a narrow band close under the refused
        # pace is trusted (the creep's hidden overshoot, which the rule would
        # otherwise pay for with a refusal per step back down) -- and only
        # for a shallow bucket, or once a pace that ran clean was refused. A
        # fixed window fits a deep bucket under the limit (it hides an
        # overshoot for up to two seconds), and a pace just under its limit
        # runs clean for good: believing the band held 100/s at 88/s.
        trusted = fit is not None and (
            fit[0] > self.rate
            or (
                fit[1] <= fit[0] * self.trusted_width
                and fit[0] >= sent * self.trusted_floor
                and (
                    at_clean_pace
                    or self.timeline.least_burst(fit[0]) <= fit[0] * self.shallow_burst_seconds
                )
            )
        )
        if fit is None or not trusted:
            self.fitted = None
            return
        self._clean = self._settled_for = 0.0
        self._reprobing = self._soft = False
        self._apply_fit(fit)
        self.rate = min(self.rate, sent / self.fit_precision)
        self.high = min(self.high or sent, sent)

    def _reprobe(self) -> None:
        """Look higher again, in case the limit rose: creep up to a ceiling, then double."""
        assert self.low is not None
        self._settled_for = 0.0
        self._clean = 0.0
        self._reprobing = True
        self._creep = self.creep**0.5
        self.high = self.low * self.reprobe_ceiling
        self.rate = self.low * self._creep
