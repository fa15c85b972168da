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
import json
import logging
from collections.abc import Iterable, Sequence, Set
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import CONTROL_CHARACTERS, Episode, EpisodeState

from ..episodes import EpisodeStore
from ..errors import NotFound, SchemaViolation
from ..protection import ProtectionError
from ..storage import insert_on_conflict
from ..storage._tables import received_copies, received_withdrawals, register, transfers
from .outbox import Outbox

__all__ = [
    "basis_text",
    "mark_known_withdrawals",
    "names_statement",
    "push_closure_withdrawal",
    "push_withdrawal",
    "receive_withdrawal",
    "withdrawal_of",
]

# A statement id is the borough system's (eCAF's free text), kept whole: bounded only so that it
# fits an index entry (`received_withdrawals`' key) on PostgreSQL at four bytes a character.
MAX_CONSENT_ID = 512


def consent_id_usable(value: object) -> bool:
    """Can a statement id another member sent be stored and matched here: a string of 1 to
    `MAX_CONSENT_ID` characters without control characters (the national model's own rule, with
    room for ids an older holder kept before the model bounded them at 200)?"""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CONSENT_ID:
        return False
    return CONTROL_CHARACTERS.search(value) is None


def _usable(value: str) -> str:
    if not consent_id_usable(value):
        raise ValueError("not a statement id")
    return value


class _Withdrawn(BaseModel):
    """A `consent_withdrawn` body as `_push` writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    episode_ref: str = Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )
    consent_id: Annotated[str, AfterValidator(_usable)]


def withdrawal_of(body: Any) -> tuple[str, str]:
    """A received withdrawal's episode and statement, or `schema_violation` (the same on either
    database: PostgreSQL would refuse a long episode_ref only when it is stored)."""
    try:
        withdrawn = _Withdrawn.model_validate(body)
    except ValidationError:
        raise SchemaViolation("the withdrawal's body is not valid") from None
    return withdrawn.episode_ref, withdrawn.consent_id


def basis_text(ids: Sequence[str]) -> str:
    """A disclosure's basis (statement and override ids) as the register keeps it: comma-joined,
    as it always was, unless an id would make that ambiguous (a comma in it, or a leading "[",
    eCAF ids are free text): then a JSON array, which `names_statement` reads exactly."""
    if any("," in i for i in ids) or (ids and ids[0].startswith("[")):
        return json.dumps(list(ids))
    return ",".join(ids)


def names_statement(basis: str, consent_id: str) -> bool:
    """Does a stored basis name the statement `consent_id`? A JSON array (`basis_text`) exactly.
    A comma-joined one (older rows, and what a receiver writes) when the id stands whole between
    commas: "CAF/2026,1" is found in "C1,CAF/2026,1". That may also find an id run together
    from two others, which errs towards telling and marking: the safe side of a withdrawal."""
    if basis.startswith("["):
        try:
            ids = json.loads(basis)
        except ValueError:
            ids = None
        if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
            return consent_id in ids
    return f",{consent_id}," in f",{basis},"


async def push_withdrawal(
    connection: AsyncConnection, outbox: Outbox | None, episode_id: str, consent_id: str
) -> int:
    """DESIGN 3.5: tell every member that received data on the statement's strength (our side of
    the register notes it) and every member we received the episode from, in the caller's
    transaction, through the outbox. How many members are told."""
    return len(await _push(connection, outbox, episode_id, [consent_id]))


async def push_closure_withdrawal(
    connection: AsyncConnection, outbox: Outbox | None, episode: Episode
) -> int:
    """An episode closed because consent was withdrawn withdraws every statement on it (the
    consent engine shares nothing on any of them): push each as `push_withdrawal` does, in the
    caller's transaction. How many members are told."""
    consent_ids = sorted({c.consent_id for c in episode.consents})
    return len(await _push(connection, outbox, str(episode.episode_id), consent_ids))


async def _push(
    connection: AsyncConnection,
    outbox: Outbox | None,
    episode_id: str,
    consent_ids: Iterable[str],
) -> set[str]:
    """Enqueue each withdrawal to the members concerned, mark our register; the members told.
    With federation switched off (no outbox) nobody is told, so nothing is marked either: a row
    marked `withdrawn_at` is one whose member was told, and is never looked at again."""
    if outbox is None:
        return set()
    rows = (
        await connection.execute(
            select(register.c.id, register.c.counterpart, register.c.basis).where(
                register.c.episode_id == episode_id,
                register.c.direction == "sent",
                register.c.withdrawn_at.is_(None),
                register.c.returned_at.is_(None),  # a refused transfer commit: nothing is held
            )
        )
    ).all()
    earlier_holders = set(
        (
            await connection.scalars(
                select(transfers.c.counterpart).where(
                    transfers.c.episode_id == episode_id,
                    transfers.c.direction == "in",
                    transfers.c.state == "committed",
                )
            )
        ).all()
    )
    told: set[str] = set()
    marked: set[str] = set()
    for consent_id in consent_ids:
        affected = [r for r in rows if names_statement(r.basis, consent_id)]
        members = {r.counterpart for r in affected} | earlier_holders
        for member in sorted(members):
            body = {"episode_ref": episode_id, "consent_id": consent_id}
            await outbox.enqueue(connection, member, "consent_withdrawn", body)
        told |= members
        marked |= {r.id for r in affected}
    if marked:
        await connection.execute(
            update(register)
            .where(register.c.id.in_(sorted(marked)))
            .values(withdrawn_at=dt.datetime.now(dt.UTC))
        )
    return told


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
    """Whether our copy, transferred on, has that statement. A copy purged since (retention)
    left its statement ids on its transfer record. A copy that no longer opens (stored by an
    earlier release, refused by a newer rule) cannot say: the withdrawal is still kept and marked
    here, but not passed on, with the alert (its id and code only) for the operator to tell by
    hand; refusing it would have the sender retry it for ever."""
    try:
        episode = (await store.get(connection, episode_ref)).episode
    except NotFound:
        kept = await connection.scalars(
            select(transfers.c.kept_consent_ids).where(
                transfers.c.episode_id == episode_ref,
                transfers.c.direction == "out",
                transfers.c.state == "committed",
                transfers.c.kept_consent_ids.is_not(None),
            )
        )
        return any(consent_id in json.loads(ids) for ids in kept)
    except (ValidationError, ProtectionError) as exc:  # refused by a rule, or under a lost key
        reason = exc.rule if isinstance(exc, ProtectionError) else "copy_unreadable"
        logging.getLogger("cafx.withdrawals").error(
            "withdrawal not passed on", extra={"episode_ref": episode_ref, "reason": reason}
        )
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
        marked = [r.id for r in rows if any(names_statement(r.basis, c) for c in consent_ids)]
        if marked:
            await connection.execute(
                update(table).where(table.c.id.in_(marked)).values(withdrawn_at=now)
            )
