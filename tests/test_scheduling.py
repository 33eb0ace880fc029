"""The readiness model on synthetic outcomes: what it learns, and what it must not.

A tiny sequential platform stands in for the simulator (seeded RNGs, no
clock): each request gets a preparation time, may be forgotten before it is
ready, and its file expires some time after; the model decides every check.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from batch_export.run.expiry import ExpiryModel, GapEvidence
from batch_export.run.preptimes import PrepTimes
from batch_export.run.scheduling import ReadinessModel

from .virtual_polling import Tally, play_concurrently

Prep = Callable[[random.Random], float]


def long_tail(rng: random.Random) -> float:
    """The long-tail scenario's draw: 0.2-1 s, 5 % of people 10-20x longer."""
    delay = rng.uniform(0.2, 1.0)
    return delay * rng.uniform(10, 20) if rng.random() < 0.05 else delay


def uniform(rng: random.Random) -> float:
    """The simulator's default preparation delay, 0.5-3 s."""
    return rng.uniform(0.5, 3.0)


def play(
    model: ReadinessModel,
    prep: Prep,
    n: int,
    *,
    expire: float = math.inf,
    forget: float = 0.0,
    seed: int = 1,
) -> Tally:
    """Export ``n`` targets one after another; each lost request is submitted again."""
    rng = random.Random(seed)
    tally = Tally()
    for _ in range(n):
        while True:
            tally.requests += 1  # the POST
            ready = prep(rng)
            lost = ready * rng.random() if rng.random() < forget else math.inf
            checks, alive, now = 0, 0.0, 0.0
            while True:
                now += model.delay(checks, now)
                checks += 1
                tally.requests += 1
                if now >= lost or now >= ready + expire:
                    model.record(checks, alive, now, "gone")
                    tally.gone += 1
                    break
                if now >= ready:
                    model.record(checks, alive, now, "ready")
                    tally.exports += 1
                    break
                model.record(checks, alive, now, "pending")
                alive = now
            if now >= ready and now < lost and now < ready + expire:
                break
    return tally


def test_long_tail_costs_little_more_than_two_requests_per_export() -> None:
    """Once learnt, long-tailed preparation costs <= 2.08 requests per export (goal: 2.10)."""
    model = ReadinessModel(rng=random.Random(2))
    play(model, long_tail, 1000, seed=1)  # learning
    tally = play(model, long_tail, 2000, seed=3)
    assert tally.per_export <= 2.08
    # the quick 95 % are caught by their first check: it sits at the body's end (1 s)
    assert 0.95 <= model.delay(0, 0.0) <= 1.5


def test_the_histogram_converges_on_the_tail() -> None:
    """Fed interval outcomes, P(not ready at t | not ready at 2 s) matches the truth."""
    model = ReadinessModel(rng=random.Random(5))
    play(model, long_tail, 3000, seed=4)
    prep = model.prep
    rng = random.Random(9)
    draws = [long_tail(rng) for _ in range(200_000)]
    tail = [d for d in draws if d > 2.0]  # the tail starts at 2 s
    for t in (5.0, 10.0, 15.0):
        truth = sum(d > t for d in tail) / len(tail)
        assert prep.survival(t) / prep.survival(2.0) == pytest.approx(truth, abs=0.12)
    assert prep.survival(2.0) == pytest.approx(0.05, abs=0.015)


def test_stale_outcomes_do_not_run_the_first_delay_away() -> None:
    """Sixty placeholders for checks made at 1 s do not push the first delay far past 1 s."""
    model = ReadinessModel(rng=random.Random(1))
    for _ in range(60):  # what --max-pending 60 brings back before any longer check
        model.record(1, 0.0, 1.0, "pending")
    assert model.delays[0] < 1.2


def test_an_expiry_is_learnt_and_first_checks_come_before_it() -> None:
    """Files gone 1.5 s after ready (0.5-3 s to prepare): the first check moves to ~2 s."""
    model = ReadinessModel(rng=random.Random(2))
    learning = play(model, uniform, 800, expire=1.5, seed=1)
    assert learning.gone > 5  # the first checks did lose files at first
    assert 1.6 <= model.expiry.first_cap() <= 2.2  # a first check by 2 s loses nothing
    tally = play(model, uniform, 1000, expire=1.5, seed=2)
    assert tally.gone <= 20
    assert tally.per_export <= 2.5  # against ~2.4 at best for 0.5-3 s and 1.5 s


def test_an_expiry_bounds_the_interval_between_later_checks() -> None:
    """Long-tail files gone 1.5 s after ready: later checks come a few seconds apart, not 10.

    Later checks lose files on a ramp (only those ready early in a long gap),
    so the bound lands above the expiry; it still cuts the losses to a few
    percent and the cost below that of the unbounded plan.
    """
    model = ReadinessModel(rng=random.Random(2))
    play(model, long_tail, 1000, expire=1.5, seed=1)
    assert model.expiry.later_cap() <= 3.5
    assert model.expiry.first_cap() == math.inf  # quick files are fetched in time
    tally = play(model, long_tail, 1000, expire=1.5, seed=2)
    assert tally.gone <= 40
    assert tally.per_export <= 2.3


def test_a_forgetting_platform_that_never_expires_keeps_its_checks_late() -> None:
    """15 % of requests forgotten, files never expiring: no cap, the first check stays late."""
    model = ReadinessModel(rng=random.Random(2))
    play(model, uniform, 2000, forget=0.15, seed=1)
    assert model.expiry.first_cap() == math.inf
    assert model.expiry.later_cap() == math.inf
    assert model.delay(0, 0.0) >= 2.6  # near the 97th percentile of 0.5-3 s


def test_no_404s_no_caps() -> None:
    """On the usual platform (nothing expires, nothing is lost) the expiry model stays silent."""
    model = ReadinessModel(rng=random.Random(2))
    play(model, long_tail, 500, seed=1)
    assert (model.expiry.first_cap(), model.expiry.later_cap()) == (math.inf, math.inf)
    assert "ExpiryModel" in repr(model)


def test_gap_evidence_finds_a_step_not_a_flat_share() -> None:
    """A jump in the 404 share at 1.5 s is a bound; a flat 20 % share is none."""
    rng = random.Random(7)
    step, flat = GapEvidence(), GapEvidence()
    for _ in range(2000):
        gap = rng.uniform(0.2, 3.0)
        step.observe(gap, gap > 1.5 and rng.random() < 0.6)
        flat.observe(gap, rng.random() < 0.2)
    assert step.bound is not None
    assert 1.2 <= step.bound <= 1.9
    assert flat.bound is None


def test_expiry_caps_use_a_margin() -> None:
    """The caps sit below the learnt bound, first checks and later checks apart."""
    model = ExpiryModel()
    for k in range(400):
        gap = 0.5 + (k % 20) * 0.1
        model.observe(2, gap, gap >= 1.5)
    bound = model.later.bound
    assert bound is not None
    assert model.later_cap() == pytest.approx(bound * model.margin)
    assert model.first_cap() == math.inf


def test_prep_times_plans_a_later_check_for_a_pending_request() -> None:
    """The plan's next check always lies after now, and past everything seen it backs off."""
    prep = PrepTimes()
    rng = random.Random(3)
    for _ in range(500):
        prep.observe(0.0, 1.0) if rng.random() < 0.9 else prep.observe(1.0, rng.uniform(2, 4))
    for elapsed in (0.0, 0.5, 1.0, 2.5, 3.9, 100.0):
        assert prep.next_check(elapsed) > elapsed
    assert prep.next_check(100_000.0) == pytest.approx(150_000.0)


def test_prep_times_replans_less_often_yet_follows_a_slower_platform() -> None:
    """20,000 outcomes re-solve the plan ~110 times (not 400), and a slow-down still shows."""
    prep = PrepTimes()
    solves = 0
    solve = prep._solve

    def counted() -> list[int]:
        nonlocal solves
        solves += 1
        return solve()

    prep._solve = counted  # type: ignore[method-assign]
    rng = random.Random(5)
    for speed in (1.0, 6.0):  # ready 0.5–1 s after the POST, then 3–6 s
        for _ in range(10_000):
            ready = rng.uniform(0.5, 1.0) * speed
            prep.observe(ready * 0.9, ready)
            prep.next_check(0.0)  # each check asks for the plan, as the pipeline's do
        if speed == 1.0:
            fast = prep.next_check(0.0)
    assert 90 <= solves <= 130
    assert fast <= 1.0 and prep.next_check(0.0) >= 2.5


def test_a_burst_of_losses_does_not_push_checks_before_any_file_is_ready() -> None:
    """Files gone 0.5 s after ready (0.3-0.6 s to prepare), 30 in flight: ~2.4 per export.

    The first checks (at 1 s) lose a whole window of files, and their 404s
    come back together. Each used to cut the first check by another 30 %,
    down to 0.25 s, where every file is still being prepared; the expiry
    bound then settled on that early gap, and runs cost 2.5-3.1 requests per
    export (the live test in test_scheduling_live.py failed on it now and
    then). One loss now bounds the checks at 70 % of its own wait, not of
    the bound before it.
    """
    for seed in range(10):
        tally = play_concurrently(
            ReadinessModel(rng=random.Random(seed)), 240, low=0.3, high=0.6, expire=0.5, seed=seed
        )
        assert tally.exports == 240
        assert tally.per_export <= 2.6, (seed, tally)
