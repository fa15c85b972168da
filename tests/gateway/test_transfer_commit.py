"""Commits a receiver refuses for good, on SQLite and PostgreSQL: nothing is stored, an accepted
offer is declined with the reason, and the holder is told to take its copy back.

- An episode the receiver's models refuse (a holder on another release, say): before, it failed
  `internal_error`, retried into a dead letter while the holder's copy stayed read-only and nobody
  held the episode.
- An episode that would be read-only here too (closed, archived, transferred): only a potential or
  open episode moves.
- A commit for an offer released so long ago that retention cleared what was accepted: before, it
  was retried forever."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from gateway.demo import DEMO_BOROUGHS, plan_federation
from gateway.errors import NotFound
from gateway.federation.outbox import Message
from gateway.keys import AUDIT, ENGINE, EPISODES, TRANSFERS
from gateway.runner import start
from gateway.storage._tables import audit_entries, outbox, transfers
from schemas import Practitioner

from ..conftest import Database
from .test_timeliness import episode

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


_LEAD = Practitioner.model_validate(
    {"name": "Lead in Camden", "organisation": "Family Hub", "agency_type": "early_help"}
)


async def _accepted(app: web.Application) -> tuple[str, str]:
    """An offer from Hackney, accepted here: its id and the episode's."""
    offer_id, episode_ref = str(uuid.uuid4()), str(uuid.uuid4())
    await _from_hackney(app, "transfer_offer", {"offer_id": offer_id, "episode_ref": episode_ref})
    async with app[AUDIT].transaction() as connection:
        await app[TRANSFERS].accept(connection, offer_id, _LEAD)
    return offer_id, episode_ref


def _moved(episode_ref: str, state: str, closed_on: str | None = None) -> dict[str, Any]:
    moved = episode(state=state, closed_on=closed_on).model_dump(mode="json")
    return moved | {"episode_id": episode_ref, "lead_professional": _LEAD.model_dump(mode="json")}


async def _outcome(app: web.Application, offer_id: str, episode_ref: str) -> dict[str, Any]:
    async with app[ENGINE].connect() as connection:
        offer = (
            await connection.execute(
                select(transfers.c.state, transfers.c.reason).where(
                    transfers.c.id == offer_id, transfers.c.direction == "in"
                )
            )
        ).one()
        declines = await connection.scalar(
            select(outbox.c.id).where(outbox.c.kind == "transfer_decline").limit(1)
        )
        refused = (
            await connection.execute(
                select(audit_entries.c.reason).where(
                    audit_entries.c.action == "transfer.receive",
                    audit_entries.c.outcome == "refused",
                )
            )
        ).scalars()
        try:
            await app[EPISODES].get(connection, episode_ref)
            stored = True
        except NotFound:
            stored = False
    return {
        "offer": (offer.state, offer.reason),
        "holder_told": declines is not None,
        "refused": list(refused),
        "stored": stored,
    }


@pytest.mark.parametrize(
    ("state", "closed_on"),
    [("closed", "2026-11-01"), ("archived", "2019-11-01"), ("transferred", None)],
)
async def test_a_commit_of_an_episode_that_would_be_read_only_here_is_refused(
    camden: web.Application,
    state: str,
    closed_on: str | None,
) -> None:
    offer_id, episode_ref = await _accepted(camden)
    body: dict[str, object] = {
        "offer_id": offer_id,
        "episode": _moved(episode_ref, state, closed_on),
    }
    await _from_hackney(camden, "transfer_commit", body)
    assert await _outcome(camden, offer_id, episode_ref) == {
        "offer": ("declined", "transfer.episode_state"),
        "holder_told": True,
        "refused": ["transfer.episode_state"],
        "stored": False,
    }


async def test_an_open_episode_is_taken(camden: web.Application) -> None:
    offer_id, episode_ref = await _accepted(camden)
    body: dict[str, object] = {"offer_id": offer_id, "episode": _moved(episode_ref, "open")}
    await _from_hackney(camden, "transfer_commit", body)
    outcome = await _outcome(camden, offer_id, episode_ref)
    assert (outcome["offer"], outcome["stored"]) == (("committed", None), True)


async def test_a_commit_after_retention_cleared_a_released_offer_is_refused_for_good(
    camden: web.Application,
) -> None:
    offer_id, episode_ref = await _accepted(camden)
    async with camden[ENGINE].begin() as connection:  # released, then cleared 7 years on
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id)
            .values(state="released", sealed=None, key_id=None)
        )
    body: dict[str, object] = {"offer_id": offer_id, "episode": _moved(episode_ref, "open")}
    await _from_hackney(camden, "transfer_commit", body)
    assert await _outcome(camden, offer_id, episode_ref) == {
        "offer": ("released", None),
        "holder_told": True,
        "refused": ["transfer.released_long_ago"],
        "stored": False,
    }
