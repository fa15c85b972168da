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
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Episode, EpisodeState, Practitioner

from ..episodes import EpisodeStore
from ..errors import Conflict, NotFound
from ..protection import KeyRing, associated_data, open_, seal
from ..storage._tables import transfers
from .outbox import Message, Outbox

__all__ = ["TransferWorkflow"]


def _bound(offer_id: str, direction: str) -> bytes:
    return associated_data("transfers", f"{offer_id}:{direction}", "sealed")


class TransferWorkflow:
    def __init__(self, me: str, store: EpisodeStore, outbox: Outbox, ring: KeyRing) -> None:
        self.me, self.store, self.outbox, self.ring = me, store, outbox, ring

    async def offer(self, connection: AsyncConnection, episode_id: str, to: str) -> str:
        stored = await self.store.get(connection, episode_id, for_update=True)
        if stored.episode.state in (EpisodeState.TRANSFERRED, EpisodeState.ARCHIVED):
            raise Conflict(f"a {stored.episode.state.value} episode cannot be transferred")
        if to == self.me:
            raise Conflict("an episode cannot be transferred to its own authority")
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

    async def incoming(self, connection: AsyncConnection) -> list[dict[str, Any]]:
        rows = await connection.execute(
            select(transfers).where(transfers.c.direction == "in").order_by(transfers.c.created_at)
        )
        return [
            {
                "offer_id": r.id,
                "from": r.counterpart,
                "episode_ref": r.episode_id,
                "state": r.state,
                "offered_at": r.created_at.isoformat(),
            }
            for r in rows
        ]

    async def accept(self, connection: AsyncConnection, offer_id: str, lead: Practitioner) -> None:
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
        if (
            received.lead_professional is None
            or received.lead_professional.model_dump(mode="json") != accepted
        ):
            raise Conflict("the committed episode does not carry the accepted lead professional")
        await self.store.add(connection, received.model_copy(update={"home_authority": self.me}))
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "in")
            .values(state="committed", updated_at=dt.datetime.now(dt.UTC))
        )
