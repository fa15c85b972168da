"""What other members tell this one about an episode its practitioners take part in (DESIGN 3.6):
a practitioner added to the Team Around the Child, a new lead professional. The holder sends them
through its outbox (`api/_episodes.py`); here they are kept, sealed (a practitioner is named), and
listed for the borough systems at `GET /api/v1/notifications`, oldest first."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Practitioner

from ..errors import SchemaViolation
from ..protection import KeyRing, associated_data, open_, seal
from ..storage import aware_utc
from ..storage._tables import notifications
from .outbox import Message

__all__ = ["KINDS", "Notifications"]

KINDS = frozenset({"tac_notification", "lead_professional_update"})


class _Told(BaseModel):
    """A notification's body as the holder writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    episode_ref: str = Field(min_length=1, max_length=36)
    holder: str = Field(pattern=r"^[ENSW][0-9]{8}$")
    practitioner: Practitioner | None


def _bound(notification_id: str) -> bytes:
    return associated_data("notifications", notification_id, "sealed")


class Notifications:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def receive(self, connection: AsyncConnection, sender: str, message: Message) -> None:
        """Keep one (in the inbox's transaction, so it is kept exactly once). A body that is not
        what a holder sends is refused `schema_violation`, and nothing is kept."""
        try:
            told = _Told.model_validate(message.body)
        except ValidationError:
            raise SchemaViolation("the notification's body is not valid") from None
        if told.holder != sender:
            raise SchemaViolation("a notification comes from the episode's holder")
        notification_id = str(uuid.uuid4())
        practitioner = (
            None if told.practitioner is None else told.practitioner.model_dump(mode="json")
        )
        sealed = seal(json.dumps(practitioner).encode(), self.ring, _bound(notification_id))
        await connection.execute(
            insert(notifications).values(
                id=notification_id,
                sender=sender,
                message_id=message.id,
                kind=message.kind,
                episode_ref=told.episode_ref,
                received_at=dt.datetime.now(dt.UTC),
                key_id=sealed.key_id,
                sealed=sealed.to_bytes(),
            )
        )

    async def listed(
        self,
        connection: AsyncConnection,
        *,
        episode_ref: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Oldest first, received after `since` (for a borough system polling), at most `limit`."""
        query = select(notifications).order_by(notifications.c.received_at, notifications.c.id)
        if episode_ref is not None:
            query = query.where(notifications.c.episode_ref == episode_ref)
        if since is not None:
            query = query.where(notifications.c.received_at > since)
        rows = await connection.execute(query.limit(limit))
        return [
            {
                "id": row.id,
                "kind": row.kind,
                "from": row.sender,
                "episode_ref": row.episode_ref,
                "received_at": aware_utc(row.received_at).isoformat(),
                "practitioner": json.loads(open_(row.sealed, self.ring, _bound(row.id))),
            }
            for row in rows
        ]
