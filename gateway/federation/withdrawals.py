"""Consent withdrawals on the receiving side (DESIGN 3.5): a holder's `consent_withdrawn` marks what we
received on the strength of that statement, in the received copies and our side of the register.

Messages to one member are retried each on its own back-off, so a withdrawal can arrive before the
held disclosure answer it cancels. The withdrawal is therefore kept (`received_withdrawals`), and a copy
stored later whose basis names a withdrawn statement is marked as it is stored: a withdrawn statement is
never shared on again, so a copy on its strength that arrives afterwards is always a stale one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Set

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..storage import insert_on_conflict
from ..storage._tables import received_copies, received_withdrawals, register

__all__ = ["mark_known_withdrawals", "record_withdrawal"]


async def record_withdrawal(
    connection: AsyncConnection, holder: str, episode_ref: str, consent_id: str
) -> None:
    """Keep the withdrawal and mark what we already hold on its strength."""
    await connection.execute(
        insert_on_conflict(connection, received_withdrawals)
        .values(
            holder=holder,
            episode_ref=episode_ref,
            consent_id=consent_id,
            received_at=dt.datetime.now(dt.UTC),
        )
        .on_conflict_do_nothing()
    )
    await _mark(connection, holder, episode_ref, {consent_id})


async def mark_known_withdrawals(
    connection: AsyncConnection, holder: str, episode_ref: str
) -> None:
    """After storing a copy from `holder`: mark it if a withdrawal of its basis came first."""
    withdrawn = await connection.scalars(
        select(received_withdrawals.c.consent_id).where(
            received_withdrawals.c.holder == holder,
            received_withdrawals.c.episode_ref == episode_ref,
        )
    )
    consent_ids = set(withdrawn.all())
    if consent_ids:
        await _mark(connection, holder, episode_ref, consent_ids)


async def _mark(
    connection: AsyncConnection, holder: str, episode_ref: str, consent_ids: Set[str]
) -> None:
    """Mark the live copies and register rows whose basis names any of `consent_ids`."""
    now = dt.datetime.now(dt.UTC)
    for table, holder_column, episode_column, received in (
        (received_copies, received_copies.c.holder, received_copies.c.episode_ref, None),
        (register, register.c.counterpart, register.c.episode_id, register.c.direction),
    ):
        query = select(table.c.id, table.c.basis).where(
            holder_column == holder, episode_column == episode_ref, table.c.withdrawn_at.is_(None)
        )
        if received is not None:
            query = query.where(received == "received")
        rows = (await connection.execute(query)).all()
        marked = [r.id for r in rows if not consent_ids.isdisjoint(r.basis.split(","))]
        if marked:
            await connection.execute(
                update(table).where(table.c.id.in_(marked)).values(withdrawn_at=now)
            )
