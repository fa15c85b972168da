"""Services in the node's database: one row per service (its ORUK JSON as imported) and a
generation number that every import moves, in the same transaction. A service id belongs to one
authority: an import never moves it to another."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.services import ServiceRecord

from ..storage._tables import directory_generation, directory_services

__all__ = ["Saved", "export_documents", "generation", "load_services", "save_services"]

_BATCH = 500


async def _bump(connection: AsyncConnection) -> int:
    """generation + 1 in the database itself, so two imports at once both move it (the row is
    made by migration 0003)."""
    await connection.execute(
        update(directory_generation).values(generation=directory_generation.c.generation + 1)
    )
    return int(await connection.scalar(select(directory_generation.c.generation)) or 0)


@dataclass(frozen=True, slots=True)
class Saved:
    """What an import did: the new generation, how many services were stored and removed, and the
    records refused because their id is another authority's service (id -> that authority)."""

    generation: int
    stored: int
    removed: int = 0
    owned_elsewhere: dict[str, str] = field(default_factory=dict)


async def _owners(
    connection: AsyncConnection, ids: Sequence[str], authority: str
) -> dict[str, str]:
    """Which of `ids` are stored as services of an authority other than `authority`."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), _BATCH):
        rows = await connection.execute(
            select(directory_services.c.id, directory_services.c.authority).where(
                directory_services.c.id.in_(ids[start : start + _BATCH]),
                directory_services.c.authority != authority,
            )
        )
        found.update({row.id: row.authority for row in rows})
    return found


async def save_services(
    engine: AsyncEngine,
    authority: str,
    records: Sequence[ServiceRecord],
    *,
    replace: bool = False,
    keep: Collection[str] = (),
) -> Saved:
    """Store (or replace, by id) `records` as `authority`'s, all in one transaction.

    A record whose id is already another authority's service is refused, not moved: one borough's
    file cannot take over (or, by a clash of ids, overwrite) another's service. With `replace`, the
    authority's stored services that are neither in `records` nor in `keep` (the ids of records of
    the same file that were rejected, so a fault in one record does not withdraw its service) are
    removed: the file is then the authority's whole directory. With `replace`, records of which
    none may be stored (each another authority's service) change nothing: such a file is not the
    authority's directory, and only an empty one withdraws every service.
    """
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as connection:
        elsewhere = await _owners(connection, [record.id for record in records], authority)
        stored = [record for record in records if record.id not in elsewhere]
        if replace and records and not stored:
            current = await connection.scalar(select(directory_generation.c.generation))
            return Saved(int(current or 0), 0, 0, elsewhere)
        removed = 0
        if replace:
            listed = {record.id for record in records} | set(keep)
            held = await connection.execute(
                select(directory_services.c.id).where(directory_services.c.authority == authority)
            )
            gone = [row.id for row in held if row.id not in listed]
            for start in range(0, len(gone), _BATCH):
                await connection.execute(
                    delete(directory_services).where(
                        directory_services.c.id.in_(gone[start : start + _BATCH])
                    )
                )
            removed = len(gone)
        for start in range(0, len(stored), _BATCH):
            batch = stored[start : start + _BATCH]
            await connection.execute(
                delete(directory_services).where(
                    directory_services.c.id.in_([record.id for record in batch]),
                    directory_services.c.authority == authority,
                )
            )
            await connection.execute(
                insert(directory_services),
                [
                    {"id": r.id, "authority": authority, "updated_at": now, "document": r.document}
                    for r in batch
                ],
            )
        return Saved(await _bump(connection), len(stored), removed, elsewhere)


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
