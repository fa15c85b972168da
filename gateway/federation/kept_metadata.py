"""The node's federation metadata keeper: the last accepted copy in the database (one row), so that
a restarted node, or another replica, refuses any older copy (DESIGN 3.1: no rollback) and can serve
on the kept one while the operator is unreachable."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..storage import insert_on_conflict
from ..storage._tables import kept_metadata

__all__ = ["DatabaseKeeper"]

log = logging.getLogger("cafx.federation.metadata")

_ROW = 1


class DatabaseKeeper:
    """`MetadataKeeper` over the table `kept_metadata`; the highest version wins, whichever replica
    wrote last."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self) -> str | None:
        async with self._engine.connect() as connection:
            token = await connection.scalar(
                select(kept_metadata.c.token).where(kept_metadata.c.id == _ROW)
            )
        return None if token is None else str(token)

    async def keep(self, token: str, version: int) -> None:
        now = dt.datetime.now(dt.UTC)
        table = kept_metadata
        statement = insert_on_conflict(self._engine, table).values(
            id=_ROW, version=version, token=token, kept_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={"version": version, "token": token, "kept_at": now},
            where=table.c.version <= version,  # never lower the floor another replica raised
        )
        async with self._engine.begin() as connection:
            kept = await connection.execute(statement)
        if kept.rowcount == 0:
            # A higher version is kept. Versions must keep rising, also across an operator key
            # rotation: a new numbering from 1 would leave every restart without its floor.
            log.warning("a higher metadata version is already kept", extra={"version": version})
