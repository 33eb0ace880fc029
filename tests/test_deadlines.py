"""``Deadlines``: every target's --timeout on one timer, in the order they fall due."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from batch_export.run.deadlines import Deadlines


def _timers(loop: asyncio.AbstractEventLoop) -> int:
    """Live timer handles in the loop's heap (asyncio keeps them in ``_scheduled``)."""
    scheduled: list[asyncio.TimerHandle] = cast(Any, loop)._scheduled
    return sum(1 for handle in scheduled if not handle.cancelled())


async def test_each_deadline_fires_once_in_order_and_released_ones_never() -> None:
    """Three watched, the first released: the other two expire, in order, after their time."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(0.05)
    fired: list[tuple[str, float]] = []
    started = loop.time()
    both = asyncio.Event()

    def expire(name: str) -> None:
        fired.append((name, loop.time() - started))
        if len(fired) == 2:
            both.set()

    for name in ("a", "b", "c"):
        deadlines.watch(name, lambda name=name: expire(name))  # type: ignore[misc]
    deadlines.release("a")
    await asyncio.wait_for(both.wait(), 5)
    assert [name for name, _ in fired] == ["b", "c"]
    assert all(at >= 0.05 - 1e-3 for _, at in fired)
    assert len(deadlines) == 0


async def test_a_thousand_open_targets_hold_one_timer() -> None:
    """However many targets are open, the loop's heap holds one timer for all of them."""
    loop = asyncio.get_running_loop()
    before = _timers(loop)
    deadlines = Deadlines(3600.0)
    for n in range(1000):
        deadlines.watch(n, lambda: None)
    assert _timers(loop) == before + 1
    for n in range(1000):
        deadlines.release(n)
    deadlines.close()
    assert _timers(loop) == before


async def test_the_timer_rearms_for_the_next_deadline_after_the_first_is_released() -> None:
    """The earliest target ended early: the one after it still expires on time."""
    deadlines = Deadlines(0.05)
    expired = asyncio.Event()
    deadlines.watch("early", lambda: None)
    await asyncio.sleep(0.02)  # the second starts later, so falls due later
    deadlines.watch("late", expired.set)
    deadlines.release("early")
    await asyncio.wait_for(expired.wait(), 5)
    assert len(deadlines) == 0


async def test_a_task_past_its_deadline_is_cancelled_by_its_callback() -> None:
    """What the exporter does with it: the expired callback cancels the target's task."""
    deadlines = Deadlines(0.02)

    async def target() -> str:
        task = asyncio.current_task()
        assert task is not None
        deadlines.watch(task, task.cancel)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "timed out"
        finally:
            deadlines.release(task)
        return "finished"

    assert await asyncio.wait_for(target(), 5) == "timed out"
