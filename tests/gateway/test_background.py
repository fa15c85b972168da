"""Background loops stop gracefully: a pass under way ends before the node goes on stopping (its
database call is never cut in half), and one that takes longer than the grace is cancelled."""

from __future__ import annotations

import asyncio

from gateway.background import Loops


async def test_a_pass_under_way_ends_before_the_loops_stop() -> None:
    ended: list[str] = []
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(0.2)  # a database call, say
        ended.append("pass")

    loops = Loops()
    loops.start(3600, work, "test")
    await started.wait()
    await loops.stop(grace=5)
    assert ended == ["pass"]  # it ended, and no second pass began


async def test_a_pass_past_the_grace_is_cancelled() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loops = Loops()
    loops.start(3600, stuck, "test")
    await started.wait()
    await asyncio.wait_for(loops.stop(grace=0.1), timeout=5)
    assert cancelled.is_set()
