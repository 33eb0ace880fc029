"""The outage gate and the JWT fallback, driven by a clock the test controls."""

from __future__ import annotations

import asyncio

import pytest

from batch_export.errors import OutageError, TransientError, UnreachableError
from batch_export.platform.auth import BearerAuth
from batch_export.platform.outage import OutageGate
from batch_export.redaction import Redactor


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _refused() -> UnreachableError:
    return UnreachableError(
        "cannot reach h:1: connection refused", host="h:1", reason="connection refused"
    )


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_probe_at_a_time_and_an_answer_opens_the_gate() -> None:
    """While down, exactly one waiter goes as the probe; its answer releases everyone."""
    clock = Clock()
    gate = OutageGate(clock=clock, first_probe=0.0)
    assert await gate.admit() == 0
    gate.answered()
    gate.unreachable(_refused(), probe=0)
    assert gate.down
    waiters = [asyncio.create_task(gate.admit()) for _ in range(10)]
    await _settle()
    done = [w for w in waiters if w.done()]
    assert len(done) == 1 and done[0].result() > 0  # the probe
    gate.answered()
    await _settle()
    assert all(w.done() for w in waiters)
    assert sorted(w.result() for w in waiters)[:-1] == [0] * 9


async def test_probe_intervals_grow_and_a_cancelled_probe_counts_as_failed() -> None:
    """Each failed probe doubles the interval; a probe that just ends hands on with backoff."""
    clock = Clock()
    gate = OutageGate(clock=clock, first_probe=1.0, max_probe_interval=8.0)
    gate.answered()
    gate.unreachable(_refused(), probe=0)
    waiter = asyncio.create_task(gate.admit())
    await _settle()
    assert not waiter.done()  # the first probe waits 1 s
    clock.now += 1.0
    gate._changed()  # the timer would fire now; the test's clock does not drive the loop's
    await _settle()
    probe = waiter.result()
    assert probe > 0
    gate.probe_ended(probe)  # e.g. an empty reply: no answer
    assert gate._next_probe == pytest.approx(clock.now + 2.0)
    second = asyncio.create_task(gate.admit())
    await _settle()
    assert not second.done()
    clock.now += 2.0
    gate._changed()
    await _settle()
    gate.unreachable(_refused(), probe=second.result())
    assert gate._next_probe == pytest.approx(clock.now + 4.0)
    gate.unreachable(_refused(), probe=second.result())  # stale news: no further growth
    assert gate._next_probe == pytest.approx(clock.now + 4.0)


async def test_past_the_outage_timeout_every_waiter_gets_outage_error() -> None:
    """The deadline is checked by the clock: waiters wake with OutageError naming host and reason."""
    clock = Clock()
    gate = OutageGate(clock=clock, outage_timeout=30.0, first_probe=1.0)
    gate.answered()
    gate.unreachable(_refused(), probe=0)
    waiters = [asyncio.create_task(gate.admit()) for _ in range(3)]
    await _settle()
    clock.now += 31.0
    gate._changed()
    await _settle()
    for waiter in waiters:
        with pytest.raises(OutageError, match="cannot reach h:1: connection refused for 31s"):
            waiter.result()


async def test_before_any_answer_the_startup_limit_counts_from_the_first_request() -> None:
    """A platform never reached gives up startup_timeout after the first request, not the first failure."""
    clock = Clock()
    gate = OutageGate(clock=clock, startup_timeout=15.0, first_probe=0.5)
    assert await gate.admit() == 0
    clock.now += 15.0  # a connect timeout: the failure arrives 15 s after the request left
    gate.unreachable(_refused(), probe=0)
    with pytest.raises(OutageError, match="nothing answered in this run"):
        await gate.admit()


async def test_a_cancelled_waiter_is_not_swallowed() -> None:
    """Cancelling a request held by the gate cancels it; the gate goes on for the others."""
    clock = Clock()
    gate = OutageGate(clock=clock, first_probe=5.0)
    gate.answered()
    gate.unreachable(_refused(), probe=0)
    waiter = asyncio.create_task(gate.admit())
    await _settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not gate._waiters


async def test_a_blip_at_an_early_refresh_keeps_the_jwt_and_asks_once() -> None:
    """A refresh due before expiry that blips keeps serving the current JWT, with one auth call."""
    clock = Clock()
    calls: list[bool] = []
    blips = iter([False, True, False])

    async def fetch(has_fallback: bool) -> str:
        calls.append(has_fallback)
        if next(blips):
            raise TransientError("auth endpoint answered HTTP 503")
        return f"a.b.{len(calls)}"

    bearer = BearerAuth(fetch, Redactor(), wall_clock=clock)
    bearer.default_lifetime = 1000.0
    first = await bearer.header()
    assert first == {"Authorization": "Bearer a.b.1"}
    clock.now += 920.0  # past the refresh point (margin 100 s), well before expiry
    headers = await asyncio.gather(*(bearer.header() for _ in range(16)))
    assert all(h == first for h in headers)  # the old JWT goes on serving
    assert calls == [False, True]  # one early attempt for sixteen waiters, with a fallback
    clock.now += 30.0
    assert await bearer.header() == {"Authorization": "Bearer a.b.3"}
