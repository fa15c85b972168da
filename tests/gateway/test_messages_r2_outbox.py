"""The outbox after review 2 (findings 2, 3 and 4), on a real database (SQLite and PostgreSQL): two
replicas holding one recipient at once do not deadlock; a transfer commit or a withdrawal to a
member missing from this replica's metadata backs off instead of being dead-lettered; a message
kept until delivered is counted, listed and can be given up once past its deadline, and its alert
is raised again each day, not once only; and a former holder's transferred copy that no longer
opens does not make a withdrawal fail for ever."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.episodes import EpisodeStore
from gateway.errors import FederationRefused, PeerUnavailable
from gateway.federation.outbox import DELIVERY_DEADLINE, Message, Outbox
from gateway.federation.withdrawals import receive_withdrawal
from gateway.protection import KeyRing, associated_data, seal
from gateway.storage import async_url, create_engine, upgrade
from gateway.storage._tables import episodes, outbox, received_withdrawals, transfers

from ..conftest import POSTGRES_URL, Database, postgres_schemas
from .test_outbox_delivery import CAMDEN, HACKNEY, SECRET, down, enqueue, ready, row
from .test_timeliness import episode


async def test_two_replicas_holding_one_recipient_do_not_deadlock() -> None:
    """More due messages than one replica takes: both serve the recipient at once, both find it
    down and hold it. Before, each hold's bulk move waited on the rows the other was writing:
    `deadlock detected` in most trials, the victim's hold rolled back."""
    async with postgres_schemas(1) as (schema,):
        first = create_engine(async_url(POSTGRES_URL), schema=schema)
        second = create_engine(async_url(POSTGRES_URL), schema=schema)
        try:
            await upgrade(first)
            ring = KeyRing.generate("k1")
            a, b = Outbox(first, ring), Outbox(second, ring)
            for _ in range(8):
                async with first.begin() as connection:
                    await connection.execute(outbox.delete())
                    for n in range(40):
                        await a.enqueue(connection, HACKNEY, "tac_notification", {"n": n})
                    await connection.execute(update(outbox).values(attempts=10))
                a._held.clear()
                b._held.clear()
                both = asyncio.Barrier(2)

                async def together(
                    recipient: str, messages: list[Message], both: asyncio.Barrier = both
                ) -> dict[str, str]:
                    await both.wait()
                    raise PeerUnavailable("peer unreachable")

                moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
                outcomes = await asyncio.gather(
                    a.deliver_due(together, now=moment),
                    b.deliver_due(together, now=moment),
                    return_exceptions=True,
                )
                assert list(outcomes) == [0, 0]
                async with first.connect() as connection:
                    waiting = await connection.scalar(
                        select(func.count()).where(
                            outbox.c.state == "pending", outbox.c.next_attempt_at <= moment
                        )
                    )
                assert waiting == 0  # every one held (or leased), none due at once
        finally:
            await first.dispose()
            await second.dispose()


async def test_a_commit_or_withdrawal_to_a_member_not_listed_backs_off(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """This replica's metadata may lag a join, or a version leave a member out by mistake: a kept
    message backs off (and raises the alert once past its deadline); a notice is dead-lettered."""
    newcomer = "E09000001"

    async def send(recipient: str, messages: list[Message]) -> dict[str, str]:
        raise FederationRefused(f"{recipient} is not a member", code="unknown_member")

    async with ready(database) as (engine, sent, _):
        notice = await enqueue(sent, engine, newcomer, 0, "tac_notification")
        withdrawn = await enqueue(sent, engine, newcomer, 1, "consent_withdrawn")
        commit = await enqueue(sent, engine, newcomer, 2, "transfer_commit")
        assert await sent.deliver_due(send, now=dt.datetime.now(dt.UTC)) == 0
        assert (await row(engine, notice)).state == "dead"
        for message_id in (withdrawn, commit):
            kept = await row(engine, message_id)
            assert (kept.state, kept.last_error) == ("pending", "unknown_member")

        later = dt.datetime.now(dt.UTC) + DELIVERY_DEADLINE + dt.timedelta(minutes=1)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cafx.outbox"):
            await sent.deliver_due(send, now=later)
        records = [r for r in caplog.records if r.name == "cafx.outbox"]
        alerts = [(r.levelno, r.getMessage(), r.__dict__["kind"]) for r in records]
        assert sorted(alerts) == [
            (logging.ERROR, "message overdue", "consent_withdrawn"),
            (logging.ERROR, "message overdue", "transfer_commit"),
        ]
        assert all(SECRET not in json.dumps(r.__dict__, default=str) for r in records)
        for message_id in (withdrawn, commit):
            assert (await row(engine, message_id)).state == "pending"


async def test_the_overdue_alert_is_raised_again_each_day(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A commit stuck for five days, tried every hour: alerts at the deadline (72 h), at 96 h and
    at 120 h; before, once only."""
    async with ready(database) as (engine, sent, _):
        await enqueue(sent, engine, CAMDEN, 0, "transfer_commit")
        start = dt.datetime.now(dt.UTC)
        with caplog.at_level(logging.ERROR, logger="cafx.outbox"):
            for hour in range(1, 122):
                await sent.deliver_due(down, now=start + dt.timedelta(hours=hour))
        overdue = [r for r in caplog.records if r.getMessage() == "message overdue"]
        assert len(overdue) == 3


async def test_a_message_past_its_deadline_is_counted_listed_and_can_be_given_up(
    database: Database,
) -> None:
    async with ready(database) as (engine, sent, _):
        stuck = await enqueue(sent, engine, CAMDEN, 0, "transfer_commit")
        fresh = await enqueue(sent, engine, CAMDEN, 1, "consent_withdrawn")
        await sent.deliver_due(down, now=dt.datetime.now(dt.UTC))
        async with engine.begin() as connection:
            await connection.execute(
                update(outbox)
                .where(outbox.c.id == stuck)
                .values(
                    created_at=dt.datetime.now(dt.UTC) - DELIVERY_DEADLINE - dt.timedelta(hours=5)
                )
            )
        assert await sent.counts() == {"pending": 2, "overdue": 1}
        (listed,) = await sent.overdue()
        assert set(listed) == {"id", "recipient", "kind", "attempts", "last_error", "created_at"}
        assert (listed["id"], listed["recipient"], listed["kind"], listed["last_error"]) == (
            stuck,
            CAMDEN,
            "transfer_commit",
            "peer_unavailable",
        )
        told = await enqueue(sent, engine, CAMDEN, 2, "tac_notification")
        async with engine.begin() as connection:  # past its deadline too, but not a kept kind
            await connection.execute(
                update(outbox)
                .where(outbox.c.id == told)
                .values(created_at=dt.datetime.now(dt.UTC) - DELIVERY_DEADLINE)
            )
        assert await sent.counts() == {"pending": 3, "overdue": 1}
        assert [m["id"] for m in await sent.overdue()] == [stuck]
        assert not await sent.give_up(told)  # dead-lettered at its next failure anyway
        assert not await sent.give_up(fresh)  # not past its deadline: still retried
        assert not await sent.give_up(str(uuid.uuid4()))
        assert await sent.give_up(stuck)
        given = await row(engine, stuck)
        assert (given.state, given.last_error) == ("dead", "given_up")
        assert not await sent.give_up(stuck)  # once
        assert await sent.counts() == {"pending": 2, "dead": 1}
        assert await sent.retry_dead(stuck)  # and the operator can still change their mind


@pytest.mark.parametrize("why", ["a newer rule", "a lost key"])
async def test_a_withdrawal_reaching_a_former_holder_whose_copy_no_longer_opens_is_kept(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    """Our copy, moved to Camden, was stored by an earlier release with a consent id a newer rule
    refuses, or sealed under a key no longer in the ring. Before, the withdrawal failed
    `internal_error` each time, and Camden retried it for ever; now it is kept (and marked), not
    passed on, with the alert."""
    ring = KeyRing.generate()
    store = EpisodeStore(ring)
    sent = Outbox(engine, ring)
    moved = episode(state="transferred")
    episode_ref = str(moved.episode_id)
    now = dt.datetime.now(dt.UTC)
    async with engine.begin() as connection:
        await store.add(connection, moved)
        document = json.loads(moved.model_dump_json())
        if why == "a newer rule":
            document["consents"][0]["consent_id"] = "C1\x1b"
        sealed = seal(
            json.dumps(document).encode(),
            ring if why == "a newer rule" else KeyRing.generate("lost"),
            associated_data("episodes", episode_ref, "document"),
        )
        await connection.execute(
            update(episodes)
            .where(episodes.c.id == episode_ref)
            .values(document=sealed.to_bytes(), key_id=sealed.key_id)
        )
        await connection.execute(
            insert(transfers).values(
                id=str(uuid.uuid4()),
                direction="out",
                episode_id=episode_ref,
                counterpart=CAMDEN,
                state="committed",
                created_at=now,
                updated_at=now,
            )
        )
    with caplog.at_level(logging.WARNING, logger="cafx.withdrawals"):
        async with engine.begin() as connection:
            await receive_withdrawal(connection, sent, store, CAMDEN, episode_ref, "C1")
    async with engine.connect() as connection:
        kept = (await connection.execute(select(received_withdrawals))).all()
        queued = (await connection.execute(select(outbox))).all()
    assert [(k.holder, k.consent_id) for k in kept] == [(CAMDEN, "C1")]
    assert queued == []
    (alert,) = [r for r in caplog.records if r.name == "cafx.withdrawals"]
    assert (alert.levelno, alert.getMessage(), alert.__dict__["reason"]) == (
        logging.ERROR,
        "withdrawal not passed on",
        "copy_unreadable" if why == "a newer rule" else "kek.unknown",
    )
