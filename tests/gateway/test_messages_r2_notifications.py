"""A sender cannot vouch for itself as a former holder (review 2, findings 1 and 7), on a real
database (SQLite and PostgreSQL) with real signed custody steps: a step `from` a member needs only
that member's signature, so steps it brought itself, or a former holder's late word brought, are
not believed; and a former holder's late word is listed `holder_verified: false`."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import NotFound
from gateway.federation.notifications import Notifications
from gateway.federation.outbox import Message
from gateway.protection import KeyRing
from gateway.storage._tables import received_copies

from .notified import CAMDEN, EPISODE, HACKNEY, MALLORY, key_for
from .notified import listed as _listed
from .notified import receive as _receive
from .notified import step as _step
from .notified import told as _told

ELSEWHERE = "E09000001"


async def test_a_former_holder_cannot_plant_a_step_of_its_own_in_its_late_word(
    engine: AsyncEngine,
) -> None:
    """Hackney moved the episode to Camden. One genuinely late word of Hackney's is kept; the step
    it signed itself and brought in that word ("from Hackney, now") must not make its later words,
    said after it moved the episode on, believed."""
    now = dt.datetime.now(dt.UTC)
    moved = now - dt.timedelta(hours=1)
    kept = Notifications(KeyRing.generate(), key_for=key_for)
    camdens = _told(
        CAMDEN, "Lead", moved + dt.timedelta(minutes=10), custody=[_step(HACKNEY, CAMDEN, moved)]
    )
    await _receive(kept, engine, CAMDEN, Message("m1", "lead_professional_update", camdens))

    planted = _step(HACKNEY, ELSEWHERE, now)
    late = _told(HACKNEY, "A Youth Worker", moved - dt.timedelta(hours=2), custody=[planted])
    await _receive(kept, engine, HACKNEY, Message("m2", "tac_notification", late))  # genuinely late

    after = _told(HACKNEY, "Fake TAC member", now - dt.timedelta(seconds=30))
    with pytest.raises(NotFound):
        await _receive(kept, engine, HACKNEY, Message("m3", "tac_notification", after))
    listed = await _listed(kept, engine)
    assert [(n["from"], n["practitioner"]["name"], n["holder_verified"]) for n in listed] == [
        (HACKNEY, "A Youth Worker", False),  # the holder then, not the holder known here now
        (CAMDEN, "Lead", False),  # a first word
    ]


async def test_a_first_speaker_that_never_held_the_episode_is_not_believed_once_named_otherwise(
    engine: AsyncEngine,
) -> None:
    """Mallory spoke first (kept on first word) with a step it signed itself; then a disclosure
    from the real holder Camden names Camden. Mallory's later pick of lead professional is refused,
    and Camden's stays the current one."""
    now = dt.datetime.now(dt.UTC)
    kept = Notifications(KeyRing.generate(), key_for=key_for)
    first = _told(
        MALLORY, "A", now - dt.timedelta(minutes=2), custody=[_step(MALLORY, ELSEWHERE, now)]
    )
    await _receive(kept, engine, MALLORY, Message("m1", "tac_notification", first))
    async with engine.begin() as connection:
        await connection.execute(
            insert(received_copies).values(
                id=str(uuid.uuid4()),
                request_id="r1",
                holder=CAMDEN,
                episode_ref=EPISODE,
                basis="C1",
                received_at=dt.datetime.now(dt.UTC),
                key_id="k",
                sealed=b"x",
            )
        )
    lead = _told(CAMDEN, "Camden's lead", now - dt.timedelta(minutes=3))
    await _receive(kept, engine, CAMDEN, Message("m2", "lead_professional_update", lead))
    picked = _told(MALLORY, "Mallory's pick", now - dt.timedelta(minutes=1))
    with pytest.raises(NotFound):
        await _receive(kept, engine, MALLORY, Message("m3", "lead_professional_update", picked))
    listed = await _listed(kept, engine)
    assert [(n["from"], n["holder_verified"], n["superseded"]) for n in listed] == [
        (CAMDEN, True, False),
        (MALLORY, False, False),
    ]


async def test_a_step_planted_in_the_chain_a_former_holder_handed_over_leads_nowhere(
    engine: AsyncEngine,
) -> None:
    """Hackney moved the episode to Camden, and slipped into the chain it handed over a step of
    its own, dated ahead, to another member; Camden shows that chain as it came. The planted step
    is Hackney's own word, and leads away from the holder known here: a word of Hackney's made
    after the move is still refused. One made before the move is kept."""
    now = dt.datetime.now(dt.UTC)
    moved = now - dt.timedelta(hours=1)
    planted_at = now - dt.timedelta(minutes=1)  # "ahead" when signed, due by now
    chain = [_step(HACKNEY, CAMDEN, moved), _step(HACKNEY, ELSEWHERE, planted_at)]
    kept = Notifications(KeyRing.generate(), key_for=key_for)
    camdens = _told(CAMDEN, "Lead", moved + dt.timedelta(minutes=10), custody=chain)
    await _receive(kept, engine, CAMDEN, Message("m1", "lead_professional_update", camdens))

    after = _told(HACKNEY, "Fake TAC member", moved + dt.timedelta(minutes=20))
    with pytest.raises(NotFound):
        await _receive(kept, engine, HACKNEY, Message("m2", "tac_notification", after))
    before = _told(HACKNEY, "A Youth Worker", moved - dt.timedelta(hours=2))
    await _receive(kept, engine, HACKNEY, Message("m3", "tac_notification", before))
    assert [n["practitioner"]["name"] for n in await _listed(kept, engine)] == [
        "A Youth Worker",
        "Lead",
    ]
