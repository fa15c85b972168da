"""Nonce stores for the replay check of DESIGN 3.2: a nonce already seen from a sender inside the window
is a replay.

How long to remember: a request is accepted while `created` is within `max_skew` (300 s) of the
receiver's clock, either way, bounds included. A request first seen at t1 with `created` c can be
replayed, clock-wise, until c + 300 <= t1 + 600. So a nonce is kept for twice the skew (`RETENTION`,
600 s), that last instant included (forgotten only once strictly older); after that no request carrying
it can pass the `created` check anyway.

`remember()` is one atomic check-and-record, so two replicas (or two tasks) receiving the same request
at once cannot both accept it: in SQL that is the primary key on (sender, nonce).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Protocol

from sqlalchemy import Table, delete
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import RateLimited
from gateway.storage import insert_on_conflict

__all__ = ["MAX_SKEW", "RETENTION", "MemoryReplayStore", "ReplayStore", "SqlReplayStore"]

MAX_SKEW = dt.timedelta(seconds=300)
RETENTION = 2 * MAX_SKEW


class ReplayStore(Protocol):
    async def remember(self, sender: str, nonce: str, now: dt.datetime) -> bool:
        """Record `nonce` for `sender`; False when it was already recorded inside the retention
        window (a replay). Must be atomic with respect to concurrent callers."""
        ...


class MemoryReplayStore:
    """One process's nonces, oldest first, forgotten after `retention`: for the transport's own tests.
    A node keeps them in its database (`SqlReplayStore`), so that a restart or another replica does
    not reopen the replay window.

    Bounded: when `max_entries` unexpired nonces are held, new requests are refused with
    `RateLimited` rather than forgetting a nonce early (which would reopen the replay window).
    """

    def __init__(self, *, retention: dt.timedelta = RETENTION, max_entries: int = 100_000) -> None:
        self._retention = retention
        self._max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], dt.datetime] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: dt.datetime) -> None:
        cutoff = now - self._retention
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if seen_at >= cutoff:  # at the window's very end a replay could still pass
                break
            del self._seen[key]

    async def remember(self, sender: str, nonce: str, now: dt.datetime) -> bool:
        self._expire(now)
        key = (sender, nonce)
        if key in self._seen:
            return False
        if len(self._seen) >= self._max_entries:
            raise RateLimited("too many federation requests inside the replay window")
        self._seen[key] = now
        return True


class SqlReplayStore:
    """Nonces in the table `federation_nonces(sender, nonce, seen_at)`, primary key (sender, nonce),
    shared by every replica of the node (SQLite or PostgreSQL).

    One statement decides: `INSERT ... ON CONFLICT (sender, nonce) DO UPDATE SET seen_at = :now
    WHERE seen_at < :cutoff RETURNING nonce` inserts a new nonce, or re-arms one whose earlier
    sighting has expired, and returns no row for a replay. Expired rows are deleted every
    `purge_every` calls (and by `purge()`, for a retention job).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table | None = None,
        *,
        retention: dt.timedelta = RETENTION,
        purge_every: int = 256,
    ) -> None:
        if table is None:
            from gateway.storage import metadata  # noqa: PLC0415 - only the SQL store needs it

            table = metadata.tables["federation_nonces"]
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError("the SQL nonce store supports PostgreSQL and SQLite")
        self._engine = engine
        self._table = table
        self._retention = retention
        self._purge_every = purge_every
        self._calls = 0

    async def remember(self, sender: str, nonce: str, now: dt.datetime) -> bool:
        table = self._table
        now = now.astimezone(dt.UTC)  # SQLite keeps no offset: store and compare UTC only
        cutoff = now - self._retention
        statement = (
            insert_on_conflict(self._engine, table)
            .values(sender=sender, nonce=nonce, seen_at=now)
            .on_conflict_do_update(
                index_elements=[table.c.sender, table.c.nonce],
                set_={"seen_at": now},
                where=table.c.seen_at < cutoff,
            )
            .returning(table.c.nonce)
        )
        async with self._engine.begin() as connection:
            fresh = (await connection.execute(statement)).first() is not None
        self._calls += 1
        if self._calls % self._purge_every == 0:
            await self.purge(now)
        return fresh

    async def purge(self, now: dt.datetime) -> int:
        """Delete nonces older than the retention window; returns how many."""
        table = self._table
        async with self._engine.begin() as connection:
            cutoff = now.astimezone(dt.UTC) - self._retention
            result = await connection.execute(delete(table).where(table.c.seen_at < cutoff))
        return int(result.rowcount)
