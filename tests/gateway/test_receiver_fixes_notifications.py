"""Notifications and withdrawals on the receiving side, on a real database (SQLite and PostgreSQL),
with real signed custody steps: a former holder's word that arrives after the new holder's is kept
when it was the holder then; a poll misses nothing received at the moment a page ended; and with
federation switched off a withdrawal marks nothing as told."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import NotFound
from gateway.federation.custody import sign_step
from gateway.federation.notifications import Notifications
from gateway.federation.outbox import Message, Outbox
from gateway.federation.withdrawals import push_withdrawal
from gateway.protection import KeyRing
from gateway.storage._tables import notifications, outbox, register

from .notified import CAMDEN, EPISODE, HACKNEY, KEYS, key_for
from .notified import listed as _listed
from .notified import receive as _receive
from .notified import told as _told

MOVED = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


async def test_a_former_holders_word_arriving_after_the_new_holders_is_kept(
    engine: AsyncEngine,
) -> None:
    """Hackney told us (overnight, while we were down) that one of ours joined the TAC, then moved
    the episode to Camden. Camden's update came first; before, Hackney's was refused `not_found`
    at every attempt, and dead-lettered: whether we were told depended on arrival order."""
    kept = Notifications(KeyRing.generate(), key_for=key_for)
    step = sign_step(
        KEYS[HACKNEY],
        episode_ref=EPISODE,
        sender=HACKNEY,
        receiver=CAMDEN,
        offer_id="o1",
        committed_at=MOVED,
    )
    camdens = _told(CAMDEN, "Lead in Camden", MOVED + dt.timedelta(minutes=10), custody=[step])
    await _receive(kept, engine, CAMDEN, Message("m1", "lead_professional_update", camdens))

    hackneys = _told(HACKNEY, "A Youth Worker", MOVED - dt.timedelta(hours=16))
    await _receive(kept, engine, HACKNEY, Message("m2", "tac_notification", hackneys))
    listed = await _listed(kept, engine)
    assert [(n["from"], n["kind"], n["holder_verified"]) for n in listed] == [
        (HACKNEY, "tac_notification", False),  # the holder then, not the holder known here now
        (CAMDEN, "lead_professional_update", False),
    ]

    # Said after Hackney moved the episode on (past the clocks' 5 minutes): no longer the holder.
    after = _told(HACKNEY, "Someone Else", MOVED + dt.timedelta(minutes=6))
    with pytest.raises(NotFound):
        await _receive(kept, engine, HACKNEY, Message("m3", "tac_notification", after))
    undated = {k: v for k, v in hackneys.items() if k != "changed_at"}  # cannot be placed
    with pytest.raises(NotFound):
        await _receive(kept, engine, HACKNEY, Message("m4", "tac_notification", undated))
    # Camden is still the holder known here: the former holder's word named nobody.
    now = dt.datetime.now(dt.UTC)
    await _receive(kept, engine, CAMDEN, Message("m5", "tac_notification", _told(CAMDEN, "B", now)))
    assert [n["from"] for n in await _listed(kept, engine)] == [HACKNEY, CAMDEN, CAMDEN]


async def test_a_former_holder_is_not_taken_on_its_own_word(engine: AsyncEngine) -> None:
    """Steps are believed only as kept here (shown by a holder): one a sender brings itself proves
    nothing, and without the federation's keys none is checked."""
    own = sign_step(
        KEYS[HACKNEY],
        episode_ref=EPISODE,
        sender=HACKNEY,
        receiver=CAMDEN,
        offer_id="o1",
        committed_at=MOVED,
    )
    for kept in (
        Notifications(KeyRing.generate(), key_for=key_for),
        Notifications(KeyRing.generate()),
    ):
        async with engine.begin() as connection:
            await connection.execute(notifications.delete())
        first = _told(CAMDEN, "Lead in Camden", MOVED + dt.timedelta(minutes=10))
        await _receive(kept, engine, CAMDEN, Message("m1", "lead_professional_update", first))
        late = _told(HACKNEY, "A Youth Worker", MOVED - dt.timedelta(hours=1), custody=[own])
        with pytest.raises(NotFound):
            await _receive(kept, engine, HACKNEY, Message("m2", "tac_notification", late))


async def test_a_poll_misses_none_received_at_the_moment_a_page_ended(
    engine: AsyncEngine,
) -> None:
    """Two kept at the same moment, the page ends between them: polling on from `since` alone
    skipped the second; with `since_id` (the last one's id) it is listed."""
    kept = Notifications(KeyRing.generate())
    for n in range(3):
        at = MOVED + dt.timedelta(minutes=n)
        await _receive(
            kept, engine, HACKNEY, Message(f"m{n}", "tac_notification", _told(HACKNEY, f"W{n}", at))
        )
    moment = dt.datetime.now(dt.UTC).replace(microsecond=123456)
    async with engine.begin() as connection:
        rows = (await connection.execute(select(notifications.c.id))).scalars().all()
        await connection.execute(update(notifications).values(received_at=moment))
    first, second, third = sorted(rows)

    page = await _listed(kept, engine, limit=2)
    assert sorted(n["id"] for n in page) == [first, second]
    last = max((n["received_at"], n["id"]) for n in page)  # the last one taken
    assert last == (moment.isoformat(), second)
    since = dt.datetime.fromisoformat(last[0])
    assert await _listed(kept, engine, since=since) == []  # as a poll did before: one skipped
    (rest,) = await _listed(kept, engine, since=since, since_id=last[1])
    assert rest["id"] == third
    assert await _listed(kept, engine, since=since, since_id=third) == []


async def test_with_federation_off_a_withdrawal_marks_nothing_as_told(
    engine: AsyncEngine,
) -> None:
    """No outbox: nobody is told, so the register row a member received data on stays unmarked
    (before, it was marked and counted as told, and never looked at again)."""
    async with engine.begin() as connection:
        await connection.execute(
            insert(register).values(
                id="r1",
                episode_id=EPISODE,
                direction="sent",
                counterpart=CAMDEN,
                requested_by="lead-1",
                sections=["assessment"],
                basis="C1",
                override=False,
                disclosed_at=dt.datetime.now(dt.UTC),
            )
        )
        assert await push_withdrawal(connection, None, EPISODE, "C1") == 0
    async with engine.connect() as connection:
        assert (await connection.scalar(select(register.c.withdrawn_at))) is None

    async with engine.begin() as connection:  # federation on: Camden told, the row marked
        assert (
            await push_withdrawal(connection, Outbox(engine, KeyRing.generate()), EPISODE, "C1")
            == 1
        )
    async with engine.connect() as connection:
        assert (await connection.scalar(select(register.c.withdrawn_at))) is not None
        assert (await connection.scalar(select(outbox.c.recipient))) == CAMDEN
