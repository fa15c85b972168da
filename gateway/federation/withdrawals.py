"""Consent withdrawals on the receiving side (DESIGN 3.5): a holder's `consent_withdrawn` marks what we
received on the strength of that statement, in the received copies and our side of the register.

Messages to one member are retried each on its own back-off, so a withdrawal can arrive before the
held disclosure answer it cancels. The withdrawal is therefore kept (`received_withdrawals`), and a copy
stored later whose basis names a withdrawn statement is marked as it is stored: a withdrawn statement is
never shared on again, so a copy on its strength that arrives afterwards is always a stale one.

A child who moved takes the episode, not the register: the members an earlier holder shared with are
in that holder's register only. So a withdrawal also travels back along the moves. Whoever holds the
episode tells the members it received the episode from; a former holder, told by the member it moved
the episode to, tells its own recipients and the members it received the episode from in turn, while
it no longer holds the episode and for a statement its copy has. It relays a withdrawal once for each
member that tells it (each is kept as received), so a child who moved back and forth ends the chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Set

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import EpisodeState

from ..episodes import EpisodeStore
from ..errors import NotFound
from ..storage import insert_on_conflict
from ..storage._tables import received_copies, received_withdrawals, register, transfers
from .outbox import Outbox

__all__ = ["mark_known_withdrawals", "push_withdrawal", "receive_withdrawal"]


async def push_withdrawal(
    connection: AsyncConnection, outbox: Outbox | None, episode_id: str, consent_id: str
) -> int:
    """DESIGN 3.5: tell every member that received data on the statement's strength (our side of
    the register notes it) and every member we received the episode from, in the caller's
    transaction, through the outbox. How many members are told."""
    rows = (
        await connection.execute(
            select(register.c.id, register.c.counterpart, register.c.basis).where(
                register.c.episode_id == episode_id,
                register.c.direction == "sent",
                register.c.withdrawn_at.is_(None),
            )
        )
    ).all()
    affected = [r for r in rows if consent_id in r.basis.split(",")]
    earlier_holders = await connection.scalars(
        select(transfers.c.counterpart).where(
            transfers.c.episode_id == episode_id,
            transfers.c.direction == "in",
            transfers.c.state == "committed",
        )
    )
    told = {r.counterpart for r in affected} | set(earlier_holders.all())
    if outbox is not None:
        for member in sorted(told):
            body = {"episode_ref": episode_id, "consent_id": consent_id}
            await outbox.enqueue(connection, member, "consent_withdrawn", body)
    if affected:
        await connection.execute(
            update(register)
            .where(register.c.id.in_([r.id for r in affected]))
            .values(withdrawn_at=dt.datetime.now(dt.UTC))
        )
    return len(told)


async def receive_withdrawal(
    connection: AsyncConnection,
    outbox: Outbox,
    store: EpisodeStore,
    sender: str,
    episode_ref: str,
    consent_id: str,
) -> None:
    """A withdrawal from `sender`: mark what it shared with us on that statement's strength, and
    pass it on as the episode's holder before, once: when we moved the episode to `sender`, no
    longer hold it (then our own consent engine decides) and our copy has that statement."""
    if not await _record(connection, sender, episode_ref, consent_id):
        return
    if await _moved_to(connection, episode_ref, sender) and await _ours_before(
        connection, store, episode_ref, consent_id
    ):
        await push_withdrawal(connection, outbox, episode_ref, consent_id)


async def _ours_before(
    connection: AsyncConnection, store: EpisodeStore, episode_ref: str, consent_id: str
) -> bool:
    try:
        episode = (await store.get(connection, episode_ref)).episode
    except NotFound:
        return False
    return episode.state is EpisodeState.TRANSFERRED and any(
        c.consent_id == consent_id for c in episode.consents
    )


async def _record(
    connection: AsyncConnection, holder: str, episode_ref: str, consent_id: str
) -> bool:
    """Keep the withdrawal and mark what we already hold on its strength; whether it was new."""
    kept = await connection.execute(
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
    return bool(kept.rowcount == 1)


async def _moved_to(connection: AsyncConnection, episode_ref: str, member: str) -> bool:
    moved = await connection.scalar(
        select(transfers.c.id)
        .where(
            transfers.c.episode_id == episode_ref,
            transfers.c.direction == "out",
            transfers.c.counterpart == member,
            transfers.c.state == "committed",
        )
        .limit(1)
    )
    return moved is not None


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
