"""What the notification tests share: members with real Ed25519 keys, signed custody steps, a
holder's notification body, and receiving and listing through `Notifications` on a real engine."""

from __future__ import annotations

import datetime as dt
from typing import Any

from joserfc.jwk import OKPKey
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import FederationRefused
from gateway.federation.custody import sign_step
from gateway.federation.notifications import Notifications
from gateway.federation.outbox import Message

CAMDEN, HACKNEY, MALLORY = "E09000007", "E09000012", "E09000099"
EPISODE = "6f1c2b9e-0d5c-4a53-9a59-0c3f1f7f2a10"
KEYS = {
    m: OKPKey.generate_key("Ed25519", parameters={"kid": f"{m}-1"}, private=True)
    for m in (CAMDEN, HACKNEY, MALLORY)
}


def key_for(member: str, kid: str, at: dt.datetime) -> OKPKey:
    if member not in KEYS or kid != f"{member}-1":
        raise FederationRefused("no such key", code="invalid_signature")
    return KEYS[member]


def step(sender: str, receiver: str, at: dt.datetime) -> str:
    """A custody step `sender` signs: the episode moved from it to `receiver` at `at`."""
    return sign_step(
        KEYS[sender],
        episode_ref=EPISODE,
        sender=sender,
        receiver=receiver,
        offer_id="o1",
        committed_at=at,
    )


def told(holder: str, name: str, changed_at: dt.datetime, **more: Any) -> dict[str, Any]:
    """A notification body as `holder` sends it, naming practitioner `name`."""
    practitioner = {"name": name, "organisation": "Family Hub", "agency_type": "early_help"}
    return {
        "episode_ref": EPISODE,
        "holder": holder,
        "practitioner": practitioner,
        "changed_at": changed_at.isoformat(),
        **more,
    }


async def receive(kept: Notifications, engine: AsyncEngine, sender: str, message: Message) -> None:
    async with engine.begin() as connection:
        await kept.receive(connection, sender, message)


async def listed(kept: Notifications, engine: AsyncEngine, **query: Any) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        return await kept.listed(connection, **query)
