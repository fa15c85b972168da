"""Services in the node's database: one row per service (its ORUK JSON as imported) and a
generation number that every import moves, in the same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.services import ServiceRecord

from ..storage._tables import directory_generation, directory_services

__all__ = ["export_documents", "generation", "load_services", "save_services"]

_BATCH = 500


async def _bump(connection: AsyncConnection) -> int:
    """generation + 1 in the database itself, so two imports at once both move it (the row is
    made by migration 0003)."""
    await connection.execute(
        update(directory_generation).values(generation=directory_generation.c.generation + 1)
    )
    return int(await connection.scalar(select(directory_generation.c.generation)) or 0)


async def save_services(
    engine: AsyncEngine, authority: str, records: Sequence[ServiceRecord]
) -> int:
    """Store (or replace, by id) `records` as `authority`'s, all or nothing; the new generation."""
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as connection:
        for start in range(0, len(records), _BATCH):
            batch = records[start : start + _BATCH]
            ids = [record.id for record in batch]
            await connection.execute(
                delete(directory_services).where(directory_services.c.id.in_(ids))
            )
            await connection.execute(
                insert(directory_services),
                [
                    {"id": r.id, "authority": authority, "updated_at": now, "document": r.document}
                    for r in batch
                ],
            )
        return await _bump(connection)


async def generation(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        value = await connection.scalar(select(directory_generation.c.generation))
    return int(value or 0)


async def load_services(engine: AsyncEngine) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """The generation and every stored (authority, document), read in one transaction."""
    async with engine.begin() as connection:
        value = await connection.scalar(select(directory_generation.c.generation))
        rows = await connection.execute(
            select(directory_services.c.authority, directory_services.c.document).order_by(
                directory_services.c.authority, directory_services.c.id
            )
        )
        return int(value or 0), [(row.authority, row.document) for row in rows]


async def export_documents(
    engine: AsyncEngine, authority: str | None = None
) -> list[dict[str, Any]]:
    query = select(directory_services.c.document).order_by(
        directory_services.c.authority, directory_services.c.id
    )
    if authority is not None:
        query = query.where(directory_services.c.authority == authority)
    async with engine.connect() as connection:
        return [row.document for row in await connection.execute(query)]


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(select(func.count()).select_from(directory_services)) or 0
        )
