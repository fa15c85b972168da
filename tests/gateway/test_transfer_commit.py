"""A commit whose episode the receiver's models refuse (a holder on another release, say) is refused
for good: nothing is stored, the accepted offer is declined with the reason, and the holder is told
to take its copy back (before: `internal_error`, retried into a dead letter while the holder's copy
stayed read-only and nobody held the episode)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from gateway.demo import DEMO_BOROUGHS, plan_federation
from gateway.errors import NotFound
from gateway.federation.outbox import Message
from gateway.keys import AUDIT, ENGINE, EPISODES, TRANSFERS
from gateway.runner import start
from gateway.storage._tables import audit_entries, outbox, transfers
from schemas import Practitioner

from ..conftest import Database

HACKNEY = DEMO_BOROUGHS[1].gss


@pytest.fixture
async def camden(database: Database, tmp_path: Path) -> AsyncIterator[web.Application]:
    plans = plan_federation(tmp_path, database=lambda _b, _f: (database.url, database.schema))
    runner = await start(plans[0].settings)
    try:
        yield runner.app
    finally:
        await runner.cleanup()


async def _from_hackney(app: web.Application, kind: str, body: dict[str, object]) -> None:
    """A message from Hackney, applied as it lands here (in the inbox's audited transaction)."""
    async with app[AUDIT].transaction() as connection:
        await app[TRANSFERS].apply(connection, HACKNEY, Message(str(uuid.uuid4()), kind, body))


async def test_a_commit_whose_episode_does_not_validate_is_refused_for_good(
    camden: web.Application,
) -> None:
    offer_id, episode_ref = str(uuid.uuid4()), str(uuid.uuid4())
    await _from_hackney(
        camden, "transfer_offer", {"offer_id": offer_id, "episode_ref": episode_ref}
    )
    lead = Practitioner.model_validate(
        {"name": "Lead in Camden", "organisation": "Family Hub", "agency_type": "early_help"}
    )
    async with camden[AUDIT].transaction() as connection:
        await camden[TRANSFERS].accept(connection, offer_id, lead)

    not_an_episode = {"episode_id": episode_ref, "child": {}}
    await _from_hackney(
        camden, "transfer_commit", {"offer_id": offer_id, "episode": not_an_episode}
    )

    async with camden[ENGINE].connect() as connection:
        offer = (
            await connection.execute(
                select(transfers.c.state, transfers.c.reason).where(
                    transfers.c.id == offer_id, transfers.c.direction == "in"
                )
            )
        ).one()
        told = (
            await connection.execute(
                select(outbox.c.recipient).where(outbox.c.kind == "transfer_decline")
            )
        ).all()
        refused = (
            await connection.execute(
                select(audit_entries.c.outcome, audit_entries.c.reason).where(
                    audit_entries.c.action == "transfer.receive"
                )
            )
        ).all()
        with pytest.raises(NotFound):
            await camden[EPISODES].get(connection, episode_ref)
    assert (offer.state, offer.reason) == ("declined", "transfer.episode_invalid")
    assert [row.recipient for row in told] == [HACKNEY]
    assert [(r.outcome, r.reason) for r in refused] == [("refused", "transfer.episode_invalid")]
