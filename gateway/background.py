"""Background loops: work a node repeats while it runs (outbox delivery, housekeeping, retention).

`Loops` stops them gracefully: a pass under way may end (for `GRACE` seconds) before it is
cancelled. Cancelled inside a database call, aiosqlite's worker thread would finish the call after
the app's event loop had closed, and fail there (seen as a stray thread error in a later test);
a pass that ends on its own also commits or rolls back as it meant to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["GRACE", "Loops", "every"]

log = logging.getLogger("cafx.background")

GRACE = 5.0  # seconds a pass under way gets to end when the node stops


async def every(
    interval: float, work: Callable[[], Awaitable[Any]], name: str, stop: asyncio.Event
) -> None:
    """`work()` now, then `interval` seconds after each pass ends, until `stop` is set (or the
    task is cancelled)."""
    while not stop.is_set():
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background loop must survive one bad pass; log the type only
            log.error("background pass failed", extra={"loop": name, "error": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


class Loops:
    """The background loops of one app, stopped together."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, interval: float, work: Callable[[], Awaitable[Any]], name: str) -> None:
        self._tasks.append(asyncio.create_task(every(interval, work, name, self._stop)))

    async def stop(self, grace: float = GRACE) -> None:
        """Let each loop end its pass (at most `grace` seconds), then cancel what still runs."""
        self._stop.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
