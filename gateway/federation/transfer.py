"""Transfer when a child moves authority (DESIGN 3.6): offer -> accept -> commit, as outbox messages.

    holder   POST /api/v1/episodes/{id}/transfer        offer (transfers: out, offered)
    receiver transfer_offer message                      transfers: in, offered
    receiver POST /api/v1/transfers/{offer}/accept       names the new lead professional
    holder   transfer_accept message                     copies the whole episode with the new lead
                                                         professional, marks its own copy
                                                         `transferred` (read-only), sends the commit
    receiver transfer_commit message                     stores the episode as its own, open

The episode is never without a lead professional: the holder's copy keeps its own until it is
read-only, and the receiver's copy arrives with the accepted one.

An episode has at most one open offer, and only an episode still held here is committed: it cannot
move to two authorities. Each step is audited in the transaction that makes it (`transfer.offer`,
`transfer.accept`, `transfer.commit`, `transfer.receive`). A child who moves back receives the
episode over its old read-only copy.

Unanswered offers escalate (DESIGN 3.6): an offer not committed after `answer_working_days` working
days (England and Wales bank holidays, London dates) is marked `escalated_at` on both members, each on
its own clock, audited (`transfer.escalate`) and logged as an alert (ids only) for the lead contacts,
and listed with its `due_by` date. It stays open: escalation asks people to act, it decides nothing.
On the receiver that includes an accepted offer whose episode never arrived.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from functools import cache
from typing import Any, Literal

import holidays
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import LONDON, Episode, EpisodeState, Practitioner, london_today

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..episodes import EpisodeStore
from ..errors import Conflict, NotFound
from ..protection import KeyRing, associated_data, open_, seal
from ..storage import aware_utc
from ..storage._tables import transfers
from .outbox import Message, Outbox

__all__ = ["TransferWorkflow", "answer_due_by"]

log = logging.getLogger("cafx.federation.transfer")
Direction = Literal["in", "out"]


@cache
def _bank_holidays() -> holidays.HolidayBase:
    return holidays.country_holidays("GB", subdiv="ENG")  # England and Wales share bank holidays


def answer_due_by(offered_at: dt.datetime, working_days: int) -> dt.date:
    """The last London day an offer made at `offered_at` (UTC when naive, as SQLite returns it) may
    wait for its answer."""
    london = aware_utc(offered_at).astimezone(LONDON).date()
    return _bank_holidays().get_nth_working_day(london, working_days)


_OPEN = ("offered", "accepted")


def _bound(offer_id: str, direction: str) -> bytes:
    return associated_data("transfers", f"{offer_id}:{direction}", "sealed")


class TransferWorkflow:
    def __init__(
        self,
        me: str,
        store: EpisodeStore,
        outbox: Outbox,
        ring: KeyRing,
        audit: AuditLog,
        *,
        answer_working_days: int = 5,
    ) -> None:
        self.me, self.store, self.outbox, self.ring = me, store, outbox, ring
        self.audit = audit
        self.answer_working_days = answer_working_days

    async def _audit(
        self,
        connection: AsyncConnection,
        actor: str,
        action: str,
        episode: str,
        reason: str | None = None,
        **details: str,
    ) -> None:
        await self.audit.append(
            connection,
            AuditDraft(
                actor=actor,
                action=action,
                outcome=Outcome.SUCCESS,
                subject=episode,
                reason=reason,
                details=details,
            ),
        )

    async def offer(self, connection: AsyncConnection, episode_id: str, to: str) -> str:
        stored = await self.store.get(connection, episode_id, for_update=True)
        if stored.episode.state in (EpisodeState.TRANSFERRED, EpisodeState.ARCHIVED):
            raise Conflict(f"a {stored.episode.state.value} episode cannot be transferred")
        if to == self.me:
            raise Conflict("an episode cannot be transferred to its own authority")
        pending = await connection.scalar(
            select(transfers.c.id).where(
                transfers.c.episode_id == episode_id,
                transfers.c.direction == "out",
                transfers.c.state.in_(_OPEN),
            )
        )
        if pending is not None:
            raise Conflict("the episode is already offered to an authority")
        offer_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        await connection.execute(
            insert(transfers).values(
                id=offer_id,
                direction="out",
                episode_id=episode_id,
                counterpart=to,
                state="offered",
                created_at=now,
                updated_at=now,
            )
        )
        await self.outbox.enqueue(
            connection,
            to,
            "transfer_offer",
            {
                "offer_id": offer_id,
                "episode_ref": episode_id,
                "state": stored.episode.state.value,
                "local_ref": stored.episode.local_ref,
            },
        )
        return offer_id

    async def listed(
        self, connection: AsyncConnection, direction: Direction = "in"
    ) -> list[dict[str, Any]]:
        """Offers made to this member (`in`, "from") or by it (`out`, "to"), oldest first."""
        rows = await connection.execute(
            select(transfers)
            .where(transfers.c.direction == direction)
            .order_by(transfers.c.created_at)
        )
        return [
            {
                "offer_id": r.id,
                "from" if direction == "in" else "to": r.counterpart,
                "episode_ref": r.episode_id,
                "state": r.state,
                "offered_at": aware_utc(r.created_at).isoformat(),
                "due_by": answer_due_by(r.created_at, self.answer_working_days).isoformat(),
                "escalated_at": r.escalated_at and aware_utc(r.escalated_at).isoformat(),
            }
            for r in rows
        ]

    async def escalate(self, today: dt.date | None = None) -> list[str]:
        """Mark the offers still not committed after their due date; the ids marked now."""
        today = today or london_today()
        now = dt.datetime.now(dt.UTC)
        marked = []
        async with self.audit.transaction() as connection:
            rows = await connection.execute(
                select(transfers).where(
                    transfers.c.state.in_(_OPEN), transfers.c.escalated_at.is_(None)
                )
            )
            for row in rows.all():
                due = answer_due_by(row.created_at, self.answer_working_days)
                if today <= due:
                    continue
                await connection.execute(
                    update(transfers)
                    .where(transfers.c.id == row.id, transfers.c.direction == row.direction)
                    .values(escalated_at=now)
                )
                details = {
                    "offer": row.id,
                    "direction": row.direction,
                    "counterpart": row.counterpart,
                    "due_by": due.isoformat(),
                }
                await self._audit(
                    connection,
                    "node",
                    "transfer.escalate",
                    row.episode_id,
                    "transfer.unanswered",
                    **details,
                )
                # The alert monitoring pages on, as for a dead letter: ids and codes only.
                log.error("transfer offer unanswered", extra=details)
                marked.append(row.id)
        return marked

    async def accept(self, connection: AsyncConnection, offer_id: str, lead: Practitioner) -> str:
        """Accept an offer made to us, naming the new lead professional; the episode's id."""
        row = (
            await connection.execute(
                select(transfers).where(transfers.c.id == offer_id, transfers.c.direction == "in")
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no such transfer offer")
        if row.state != "offered":
            raise Conflict(f"the offer is {row.state}")
        sealed = seal(lead.model_dump_json().encode(), self.ring, _bound(offer_id, "in"))
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "in")
            .values(
                state="accepted",
                updated_at=dt.datetime.now(dt.UTC),
                key_id=sealed.key_id,
                sealed=sealed.to_bytes(),
            )
        )
        await self.outbox.enqueue(
            connection,
            row.counterpart,
            "transfer_accept",
            {"offer_id": offer_id, "lead_professional": lead.model_dump(mode="json")},
        )
        return str(row.episode_id)

    async def apply(self, connection: AsyncConnection, sender: str, message: Message) -> None:
        """Apply a transfer message (inside the inbox transaction)."""
        body, now = message.body, dt.datetime.now(dt.UTC)
        if message.kind == "transfer_offer":
            await connection.execute(
                insert(transfers).values(
                    id=str(body["offer_id"]),
                    direction="in",
                    episode_id=str(body["episode_ref"]),
                    counterpart=sender,
                    state="offered",
                    created_at=now,
                    updated_at=now,
                )
            )
        elif message.kind == "transfer_accept":
            await self._commit(connection, sender, str(body["offer_id"]), body["lead_professional"])
        elif message.kind == "transfer_commit":
            await self._receive(connection, sender, str(body["offer_id"]), body["episode"])

    async def _commit(
        self, connection: AsyncConnection, sender: str, offer_id: str, lead: dict[str, Any]
    ) -> None:
        row = (
            await connection.execute(
                select(transfers).where(
                    transfers.c.id == offer_id,
                    transfers.c.direction == "out",
                    transfers.c.counterpart == sender,
                )
            )
        ).one_or_none()
        if row is None or row.state != "offered":
            raise Conflict("no open offer to this member")
        stored = await self.store.get(connection, row.episode_id, for_update=True)
        if stored.episode.state in (EpisodeState.TRANSFERRED, EpisodeState.ARCHIVED):
            raise Conflict(
                f"the episode is {stored.episode.state.value}: it is no longer ours to move"
            )
        document = stored.episode.model_dump(mode="json")
        document.update(
            home_authority=sender,
            lead_professional=Practitioner.model_validate(lead).model_dump(mode="json"),
        )
        moved = Episode.model_validate(document)  # refuses an invalid lead professional
        await self.store.replace(
            connection,
            stored,
            stored.episode.model_copy(update={"state": EpisodeState.TRANSFERRED}),
        )
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "out")
            .values(state="committed", updated_at=dt.datetime.now(dt.UTC))
        )
        await self.outbox.enqueue(
            connection,
            sender,
            "transfer_commit",
            {"offer_id": offer_id, "episode": moved.model_dump(mode="json")},
        )
        await self._audit(
            connection, f"member:{sender}", "transfer.commit", row.episode_id, offer=offer_id
        )

    async def _receive(
        self, connection: AsyncConnection, sender: str, offer_id: str, episode: dict[str, Any]
    ) -> None:
        row = (
            await connection.execute(
                select(transfers).where(
                    transfers.c.id == offer_id,
                    transfers.c.direction == "in",
                    transfers.c.counterpart == sender,
                )
            )
        ).one_or_none()
        if row is None or row.state != "accepted" or row.sealed is None:
            raise Conflict("no accepted offer from this member")
        accepted = json.loads(open_(row.sealed, self.ring, _bound(offer_id, "in")))
        received = Episode.model_validate(episode)
        if str(received.episode_id) != row.episode_id:
            raise Conflict("the committed episode is not the one offered")
        if (
            received.lead_professional is None
            or received.lead_professional.model_dump(mode="json") != accepted
        ):
            raise Conflict("the committed episode does not carry the accepted lead professional")
        ours = received.model_copy(update={"home_authority": self.me})
        try:  # the child moved back: our old copy, read-only since it left, takes the episode again
            old = await self.store.get(connection, row.episode_id, for_update=True)
        except NotFound:
            await self.store.add(connection, ours)
        else:
            if old.episode.state != EpisodeState.TRANSFERRED:
                raise Conflict("this authority already holds the episode")
            await self.store.replace(connection, old, ours)
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "in")
            .values(state="committed", updated_at=dt.datetime.now(dt.UTC))
        )
        await self._audit(
            connection, f"member:{sender}", "transfer.receive", row.episode_id, offer=offer_id
        )
