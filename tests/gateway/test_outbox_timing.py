"""The outbox times what happens in a pass from when it happened, not from the pass's start: a
hold after a send that took its whole timeout, and the lease of the messages still to send."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import BadRequest, PeerUnavailable
from gateway.federation.outbox import BATCH_BYTES, LEASE, Message, Outbox
from gateway.storage import aware_utc
from gateway.storage._tables import outbox

from ..conftest import Database
from .test_outbox_delivery import HACKNEY, enqueue, ready

SLOW = 0.4  # seconds a send takes: a timeout, scaled down


async def _attempts_at(engine: Any) -> list[dt.datetime]:
    """Each message's next attempt, the oldest message first."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(outbox).order_by(outbox.c.created_at))).all()
    return [aware_utc(row.next_attempt_at) for row in rows]


async def _queue(sent: Outbox, engine: AsyncEngine, count: int, *, per_request: int) -> None:
    """`count` messages to Hackney (numbered in `n`), padded so that `per_request` fit a request."""
    pad = "x" * (BATCH_BYTES // 2 + 1 if per_request == 1 else BATCH_BYTES // per_request - 2000)
    for n in range(count):
        async with engine.begin() as connection:
            await sent.enqueue(connection, HACKNEY, "tac_notification", {"n": n, "pad": pad})


async def test_a_hold_counts_from_when_the_send_failed(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)  # no jitter: the least hold there is

    async def times_out(recipient: str, messages: list[Message]) -> Mapping[str, str]:
        await asyncio.sleep(SLOW)
        raise PeerUnavailable("no answer")

    async with ready(database) as (engine, sent, _):
        await enqueue(sent, engine, HACKNEY, 1, "tac_notification")
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(times_out, now=moment) == 0
        [resume] = await _attempts_at(engine)
        # Held from the failure: the next pass a moment after it does not call the peer again.
        assert resume >= moment + dt.timedelta(seconds=SLOW)


async def test_a_message_another_replica_took_once_the_lease_ran_out_is_left_to_it(
    database: Database,
) -> None:
    sent_here: list[int] = []
    elsewhere = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # the other replica's hold

    async def slow(recipient: str, messages: list[Message]) -> Mapping[str, str]:
        if not sent_here:  # meanwhile the lease ran out and another replica took the third
            async with engine.begin() as connection:
                third = select(outbox.c.id).order_by(outbox.c.created_at).offset(2).limit(1)
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id == third.scalar_subquery())
                    .values(next_attempt_at=elsewhere)
                )
        sent_here.extend(int(message.body["n"]) for message in messages)
        return {message.id: "applied" for message in messages}

    async with ready(database) as (engine, sent, _):
        await _queue(sent, engine, 3, per_request=1)
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(slow, now=moment) == 2
        assert sent_here == [0, 1]
        assert (await _attempts_at(engine))[2] == elsewhere  # its hold stands


async def test_a_refused_batch_goes_again_one_by_one_before_the_next_batch(
    database: Database,
) -> None:
    requests: list[list[int]] = []

    async def refuses_the_first(recipient: str, messages: list[Message]) -> Mapping[str, str]:
        requests.append([int(message.body["n"]) for message in messages])
        if len(requests) == 1:
            raise BadRequest("one of them is of a kind this release does not take")
        return {message.id: "applied" for message in messages}

    async with ready(database) as (engine, sent, _):
        await _queue(sent, engine, 6, per_request=3)
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(refuses_the_first, now=moment) == 6
    assert requests == [[0, 1, 2], [0], [1], [2], [3, 4, 5]]


async def test_messages_still_to_send_stay_leased_while_a_slow_batch_goes(
    database: Database,
) -> None:
    seen: list[list[dt.datetime]] = []

    async def slow(recipient: str, messages: list[Message]) -> Mapping[str, str]:
        seen.append(await _attempts_at(engine))
        await asyncio.sleep(SLOW)
        return {message.id: "applied" for message in messages}

    async with ready(database) as (engine, sent, _):
        await _queue(sent, engine, 3, per_request=1)
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(slow, now=moment) == 3
        assert len(seen) == 3
        # When the third request goes, two slow ones have gone: its lease runs from then.
        third = seen[2][2]
        assert third >= moment + 2 * dt.timedelta(seconds=SLOW) + LEASE
