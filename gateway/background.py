"""Background loops: work a node repeats while it runs (outbox delivery, housekeeping, retention)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["every"]

log = logging.getLogger("cafx.background")


async def every(interval: float, work: Callable[[], Awaitable[Any]], name: str) -> None:
    """`work()` now, then `interval` seconds after each pass ends, until cancelled."""
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background loop must survive one bad pass; log the type only
            log.error("background pass failed", extra={"loop": name, "error": type(exc).__name__})
        await asyncio.sleep(interval)
