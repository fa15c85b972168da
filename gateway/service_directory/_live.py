"""The index a node searches, kept in step with the database.

Loaded when the node starts; rebuilt after an import through this process, and, at most every
`directory_refresh_seconds`, when the generation row shows an import by another process (the CLI).
The check is one single-row read, made by the first search after the interval, never per query.
Building runs in a worker thread so the event loop keeps answering meanwhile; searches go on against
the old index until the new one is swapped in. A database that cannot be read (not migrated yet, or
down) leaves the last index in place: the node still starts, and `/readyz` says what is wrong.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.services import AccessError, ServiceIndex, ServiceRecord, stored_record

from ..keys import DIRECTORY, ENGINE, SETTINGS
from ._store import generation, load_services

__all__ = ["LiveDirectory", "directory_context"]

log = logging.getLogger("cafx.directory")


def _build(rows: list[tuple[str, dict[str, Any]]]) -> ServiceIndex:
    entries: list[tuple[str, ServiceRecord]] = []
    for authority, document in rows:
        try:
            entries.append((authority, stored_record(document)))
        except (ValidationError, AccessError):  # checked on import; a row edited by hand since
            log.warning("stored service skipped: no longer readable")
    return ServiceIndex(entries)


class LiveDirectory:
    def __init__(self, engine: AsyncEngine, refresh_seconds: float) -> None:
        self._engine = engine
        self._refresh = refresh_seconds
        self._index = ServiceIndex([])
        self._generation = -1
        self._checked = -float("inf")
        self._lock = asyncio.Lock()

    async def reload(self) -> ServiceIndex:
        async with self._lock:
            number, rows = await load_services(self._engine)
            self._index = await asyncio.to_thread(_build, rows)
            self._generation = number
            self._checked = time.monotonic()
            return self._index

    async def index(self) -> ServiceIndex:
        """The current index; reloaded first if another process imported since the last check."""
        if time.monotonic() - self._checked < self._refresh or self._lock.locked():
            return self._index
        self._checked = time.monotonic()
        try:
            if await generation(self._engine) != self._generation:
                return await self.reload()
        except (SQLAlchemyError, OSError) as exc:
            log.warning("service directory not refreshed", extra={"error": type(exc).__name__})
        return self._index


async def directory_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the database): the node's index, loaded before it serves."""
    live = LiveDirectory(app[ENGINE], app[SETTINGS].directory_refresh_seconds)
    try:
        await live.reload()
    except (SQLAlchemyError, OSError) as exc:  # tried again by the first search after the interval
        log.warning("service directory not loaded", extra={"error": type(exc).__name__})
    app[DIRECTORY] = live
    yield
