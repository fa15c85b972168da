"""Delivering the outbox (`gateway/federation/outbox.py`), on a real database, to real peers.

- Given up by age, not by count: a message is retried (back-off capped at 10 minutes) until it is
  older than the delivery deadline (72 h), then dead-lettered with the alert. It used to die at its
  8th failure, about 4 minutes in, so a peer down for a 10-minute deploy lost a transfer commit.
  (A transfer commit or a consent withdrawal is never given up by age: see
  test_outbox_fixes_delivery.py.)
- One peer does not hold up the others: each pass serves several recipients at once, each with its
  own oldest messages, and a recipient that does not answer is held back as a whole (one request a
  pass, not one timeout per message). A healthy peer's message used to wait 7 minutes behind 120
  messages to a dead one.
- A delivered message keeps no body (a `disclosure_answer` carries disclosed content, a
  `transfer_commit` the whole episode).

Time is the `now` each pass is given: no test waits for a back-off. The peers are aiohttp servers
reached over HTTP, the way the node's `send` reaches them (a refusal or no answer is
`PeerUnavailable`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import PeerUnavailable
from gateway.federation.outbox import (
    BATCH_BYTES,
    DELIVERY_DEADLINE,
    MAX_DELAY,
    PER_RECIPIENT,
    RECIPIENTS,
    Message,
    Outbox,
    Send,
)
from gateway.protection import KeyRing, associated_data, open_, seal
from gateway.storage import aware_utc, create_engine, rewrap_sealed, upgrade
from gateway.storage._tables import outbox

from ..conftest import Database

CAMDEN, HACKNEY, ISLINGTON = "E09000007", "E09000012", "E09000019"
JSON = {"Content-Type": "application/json"}
SECRET = "Ada Lovelace, 10 Downing Street"  # stands for the personal data a body carries


@asynccontextmanager
async def ready(database: Database) -> AsyncIterator[tuple[AsyncEngine, Outbox, KeyRing]]:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        ring = KeyRing.generate("k1")
        yield engine, Outbox(engine, ring), ring
    finally:
        await engine.dispose()


async def enqueue(sent: Outbox, engine: AsyncEngine, recipient: str, n: int, kind: str) -> str:
    async with engine.begin() as connection:
        return await sent.enqueue(connection, recipient, kind, {"n": n, "note": SECRET})


async def row(engine: AsyncEngine, message_id: str) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(select(outbox).where(outbox.c.id == message_id))).one()


async def down(recipient: str, messages: list[Message]) -> dict[str, str]:
    raise PeerUnavailable("peer unreachable")


class Peer:
    """A member's node as far as messages go: `POST /messages`, acknowledging each one applied.
    `hang` makes it a black hole (requests are counted, never answered, until released)."""

    def __init__(self, *, hang: bool = False, body_limit: int = 4 * 1024 * 1024) -> None:
        self.hang, self.body_limit = hang, body_limit
        self.meet: Peer | None = None
        self.requests: list[list[dict[str, Any]]] = []
        self.arrived, self.release = asyncio.Event(), asyncio.Event()

    async def messages(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > self.body_limit:  # read whole, then refused, as a node's limit does
            return web.json_response({"error": "payload_too_large"}, status=413)
        batch = json.loads(raw)["messages"]
        self.requests.append(batch)
        self.arrived.set()
        if self.hang:
            await self.release.wait()
            return web.json_response({"error": "busy"}, status=503)
        if self.meet is not None:  # answers only once the other peer was called too
            try:
                await asyncio.wait_for(self.meet.arrived.wait(), 10)
            except TimeoutError:
                return web.json_response({"error": "busy"}, status=503)
        acks = [{"id": m["id"], "status": "applied"} for m in batch]
        return web.json_response({"acknowledgements": acks})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=2 * self.body_limit)
        app.router.add_post("/messages", self.messages)
        return app

    @property
    def received(self) -> list[int]:
        return [m["body"]["n"] for batch in self.requests for m in batch]


Serve = Callable[[Mapping[str, Peer]], Awaitable[Send]]


@pytest.fixture
async def peers(aiohttp_server: AiohttpServer) -> AsyncIterator[Serve]:
    """Starts the peers named; gives the `send` that reaches them, as the node's does."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    started: list[Peer] = []

    async def serve(named: Mapping[str, Peer]) -> Send:
        urls: dict[str, str] = {}
        for member, peer in named.items():
            urls[member] = str((await aiohttp_server(peer.app())).make_url("/messages"))
            started.append(peer)

        async def send(recipient: str, messages: list[Message]) -> dict[str, str]:
            body = io.BytesIO(json.dumps({"messages": [m.as_json() for m in messages]}).encode())
            timeout = aiohttp.ClientTimeout(total=0.5) if named[recipient].hang else None
            try:
                async with session.post(
                    urls[recipient], data=body, headers=JSON, timeout=timeout
                ) as reply:
                    if reply.status != 200:
                        raise PeerUnavailable(f"messages refused ({reply.status})")
                    answer = await reply.json()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise PeerUnavailable("peer unreachable") from exc
            return {a["id"]: a["status"] for a in answer["acknowledgements"]}

        return send

    yield serve
    for peer in started:
        peer.release.set()
    await session.close()


async def test_retried_until_the_deadline_then_dead_lettered_with_the_alert(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with ready(database) as (engine, sent, ring):
        message_id = await enqueue(sent, engine, HACKNEY, 1, "disclosure_answer")
        created = aware_utc((await row(engine, message_id)).created_at)
        moment = created
        for _ in range(20):  # each pass when it is due again: 20 failures, well past 8
            assert await sent.deliver_due(down, now=moment) == 0
            kept = await row(engine, message_id)
            assert kept.state == "pending"
            assert aware_utc(kept.next_attempt_at) - moment <= MAX_DELAY
            moment = aware_utc(kept.next_attempt_at)
        assert kept.attempts == 20 and kept.last_error == "peer_unavailable"

        # a peer back after a long outage, inside the deadline: still sent
        moment = created + DELIVERY_DEADLINE - dt.timedelta(minutes=1)
        assert await sent.deliver_due(down, now=moment) == 0
        assert (await row(engine, message_id)).state == "pending"
        assert not [r for r in caplog.records if r.getMessage() == "message dead-lettered"]

        # its first failure past the deadline dead-letters it, with the alert
        moment = created + DELIVERY_DEADLINE + MAX_DELAY
        with caplog.at_level(logging.ERROR, logger="cafx.outbox"):
            await sent.deliver_due(down, now=moment)
        dead = await row(engine, message_id)
        assert (dead.state, dead.attempts, dead.last_error) == ("dead", 22, "peer_unavailable")
        [alert] = [r for r in caplog.records if r.getMessage() == "message dead-lettered"]
        assert alert.levelno == logging.ERROR
        assert [alert.__dict__[k] for k in ("message_id", "recipient", "kind", "reason")] == [
            message_id,
            HACKNEY,
            "disclosure_answer",
            "peer_unavailable",
        ]
        assert all(SECRET not in json.dumps(r.__dict__, default=str) for r in caplog.records)
        assert await sent.deliver_due(down, now=moment + dt.timedelta(days=1)) == 0  # stays dead

        # the console's retry sends it again with its body (a dead message keeps it)
        assert await sent.retry_dead(message_id)
        arrived: list[Message] = []

        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            arrived.extend(messages)
            return {m.id: "applied" for m in messages}

        assert await sent.deliver_due(up, now=moment + dt.timedelta(days=1)) == 1
        assert [m.body for m in arrived] == [{"n": 1, "note": SECRET}]


async def test_the_deadline_is_the_outbox_s_to_set(database: Database) -> None:
    async with ready(database) as (engine, _, ring):
        sent = Outbox(engine, ring, deadline=dt.timedelta(hours=1))
        message_id = await enqueue(sent, engine, HACKNEY, 1, "tac_notification")
        created = aware_utc((await row(engine, message_id)).created_at)
        await sent.deliver_due(down, now=created + dt.timedelta(minutes=59))
        assert (await row(engine, message_id)).state == "pending"
        await sent.deliver_due(down, now=created + dt.timedelta(hours=1, minutes=10))
        assert (await row(engine, message_id)).state == "dead"


async def test_a_dead_peer_holds_up_nobody_else(database: Database, peers: Serve) -> None:
    dead, healthy = Peer(hang=True), Peer()
    send = await peers({HACKNEY: dead, CAMDEN: healthy})
    async with ready(database) as (engine, sent, _):
        ids = [await enqueue(sent, engine, HACKNEY, n, "consent_withdrawn") for n in range(120)]
        await enqueue(sent, engine, CAMDEN, 1000, "lead_professional_update")
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

        assert await sent.deliver_due(send, now=moment) == 1
        assert healthy.received == [1000]  # in the first pass, behind 120 older messages
        # the dead peer cost one request (its first batch), not one timeout per message
        assert dead.received == list(range(PER_RECIPIENT))

        # held back as a whole: the messages sent wait until one moment, the others with them
        rows = [await row(engine, message_id) for message_id in ids]
        resume = aware_utc(rows[0].next_attempt_at)
        assert {aware_utc(r.next_attempt_at) for r in rows[:PER_RECIPIENT]} == {resume}
        assert [r.attempts for r in rows] == [1] * PER_RECIPIENT + [0] * (120 - PER_RECIPIENT)
        for instant in (moment, moment + (resume - moment) / 2):
            if instant < resume:  # not called again before then, though 100 are due
                assert await sent.deliver_due(send, now=instant) == 0
        assert len(dead.requests) == 1
        assert await sent.counts() == {"delivered": 1, "pending": 120}

        later = moment + MAX_DELAY + dt.timedelta(seconds=61)
        assert await sent.deliver_due(send, now=later) == 0
        assert len(dead.requests) == 2
        assert dead.requests[1][0]["body"]["n"] == 0  # the oldest first, again


async def test_recipients_are_sent_to_at_once(database: Database, peers: Serve) -> None:
    # each peer answers only once the other was called: sending one after the other fails
    camden, islington = Peer(), Peer()
    camden.meet, islington.meet = islington, camden
    send = await peers({CAMDEN: camden, HACKNEY: islington})
    async with ready(database) as (engine, sent, _):
        await enqueue(sent, engine, CAMDEN, 1, "tac_notification")
        await enqueue(sent, engine, HACKNEY, 2, "tac_notification")
        assert await sent.deliver_due(send) == 2
        assert (camden.received, islington.received) == ([1], [2])


async def test_each_pass_serves_a_bounded_number_of_recipients_fairly(database: Database) -> None:
    async with ready(database) as (engine, sent, _):
        busy = "E06000001"
        for n in range(3 * PER_RECIPIENT):
            await enqueue(sent, engine, busy, n, "tac_notification")
        quiet = [f"E0700{n:04d}" for n in range(RECIPIENTS + 3)]
        for n, member in enumerate(quiet):
            await enqueue(sent, engine, member, n, "tac_notification")
        calls: list[tuple[str, int]] = []
        in_flight = most = 0

        async def send(recipient: str, messages: list[Message]) -> dict[str, str]:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0)  # let the others start
            calls.append((recipient, len(messages)))
            in_flight -= 1
            return {m.id: "applied" for m in messages}

        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(send, now=moment) == PER_RECIPIENT + RECIPIENTS - 1
        assert 1 < most <= RECIPIENTS
        assert dict(calls)[busy] == PER_RECIPIENT  # its first messages only, the others their turn
        assert {r for r, _ in calls} == {busy, *quiet[: RECIPIENTS - 1]}  # longest waiting first
        calls.clear()
        assert await sent.deliver_due(send, now=moment) == PER_RECIPIENT + 4
        assert {r for r, _ in calls} == {busy, *quiet[RECIPIENTS - 1 :]}


async def test_a_held_recipient_gets_its_messages_together_and_in_order(
    database: Database,
) -> None:
    async with ready(database) as (engine, sent, ring):
        first = await enqueue(sent, engine, HACKNEY, 1, "transfer_accept")
        second = await enqueue(sent, engine, HACKNEY, 2, "transfer_commit")
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(down, now=moment) == 0
        a, b = await row(engine, first), await row(engine, second)
        assert a.next_attempt_at == b.next_attempt_at  # one moment: neither can overtake
        resume = aware_utc(a.next_attempt_at)
        # another replica, without this one's memory, is kept off them by the rows' own times
        assert (
            await Outbox(engine, ring).deliver_due(down, now=resume - dt.timedelta(seconds=1)) == 0
        )
        assert (await row(engine, first)).attempts == 1
        third = await enqueue(sent, engine, HACKNEY, 3, "tac_notification")  # written meanwhile
        requests: list[list[int]] = []

        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            requests.append([m.body["n"] for m in messages])
            return {m.id: "applied" for m in messages}

        if resume > moment:  # a held recipient is not sent even what was written since
            assert await sent.deliver_due(up, now=moment) == 0
            assert requests == []
        assert await sent.deliver_due(up, now=resume) == 3
        assert requests == [[1, 2, 3]]
        assert (await row(engine, third)).attempts == 0


async def test_a_message_refused_for_its_size_does_not_hold_the_others(
    database: Database, peers: Serve
) -> None:
    islington = Peer(body_limit=BATCH_BYTES)  # a bigger request is refused: 413
    send = await peers({ISLINGTON: islington})
    async with ready(database) as (engine, sent, _):
        async with engine.begin() as connection:
            big = await sent.enqueue(
                connection, ISLINGTON, "transfer_commit", {"n": 1, "episode": "x" * BATCH_BYTES}
            )
        await enqueue(sent, engine, ISLINGTON, 2, "tac_notification")
        assert await sent.deliver_due(send) == 1
        assert islington.received == [2]
        kept = await row(engine, big)
        assert (kept.state, kept.attempts, kept.last_error) == ("pending", 1, "peer_unavailable")


async def test_a_delivered_message_keeps_no_body(database: Database) -> None:
    async with ready(database) as (engine, sent, ring):
        message_id = await enqueue(sent, engine, HACKNEY, 1, "disclosure_answer")
        bound = associated_data("outbox", message_id, "sealed")
        assert json.loads(open_((await row(engine, message_id)).sealed, ring, bound))["note"]

        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            return {m.id: "applied" for m in messages}

        assert await sent.deliver_due(up) == 1
        kept = await row(engine, message_id)
        assert (kept.id, kept.kind, kept.recipient, kept.state) == (
            message_id,
            "disclosure_answer",
            HACKNEY,
            "delivered",
        )
        assert kept.created_at is not None
        assert open_(kept.sealed, ring, bound) == b""
        assert not await sent.retry_dead(message_id)  # a delivered message is never sent again

        # a message delivered before bodies were dropped: cleared by the next pass
        older = seal(
            json.dumps({"note": SECRET}).encode(), ring, associated_data("outbox", "m0", "sealed")
        )
        now = dt.datetime.now(dt.UTC)
        async with engine.begin() as connection:
            await connection.execute(
                insert(outbox).values(
                    id="m0",
                    recipient=HACKNEY,
                    kind="transfer_commit",
                    state="delivered",
                    attempts=1,
                    next_attempt_at=now,
                    created_at=now,
                    key_id=older.key_id,
                    sealed=older.to_bytes(),
                )
            )
        await Outbox(engine, ring).deliver_due(up)
        cleared = (await row(engine, "m0")).sealed
        assert open_(cleared, ring, associated_data("outbox", "m0", "sealed")) == b""

        # the cleared values still go through a key rotation
        rotated = ring.with_new_key()
        async with engine.begin() as connection:
            assert (await rewrap_sealed(connection, rotated))["outbox"] == 2
        retired = rotated.without_keys([ring.current])
        assert open_((await row(engine, message_id)).sealed, retired, bound) == b""


async def test_a_message_that_cannot_be_opened_is_dead_lettered_and_the_rest_go(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Its key gone or its body spoilt, no retry can send it: it used to fail every pass whole."""
    async with ready(database) as (engine, sent, ring):
        spoilt = await enqueue(sent, engine, HACKNEY, 1, "consent_withdrawn")
        good = await enqueue(sent, engine, HACKNEY, 2, "consent_withdrawn")
        other = await enqueue(sent, engine, CAMDEN, 3, "consent_withdrawn")
        async with engine.begin() as connection:
            await connection.execute(
                outbox.update()
                .where(outbox.c.id == spoilt)
                .values(sealed=seal(b"not json", ring, b"another message").to_bytes())
            )
        arrived: list[int] = []

        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            arrived.extend(m.body["n"] for m in messages)
            return {m.id: "applied" for m in messages}

        with caplog.at_level(logging.ERROR, logger="cafx.outbox"):
            assert await sent.deliver_due(up, now=dt.datetime.now(dt.UTC)) == 2
        assert sorted(arrived) == [2, 3]
        assert [(await row(engine, m)).state for m in (spoilt, good, other)] == [
            "dead",
            "delivered",
            "delivered",
        ]
        assert (await row(engine, spoilt)).last_error == "unreadable"
        assert [r.getMessage() for r in caplog.records] == ["message dead-lettered"]


async def test_an_operators_retry_is_not_kept_waiting_by_a_hold(database: Database) -> None:
    async with ready(database) as (engine, sent, ring):
        message_id = await enqueue(sent, engine, HACKNEY, 1, "consent_withdrawn")
        now = dt.datetime.now(dt.UTC)
        await sent.deliver_due(down, now=now)  # held back now, for a while
        async with engine.begin() as connection:
            await connection.execute(
                outbox.update().where(outbox.c.id == message_id).values(state="dead")
            )
        assert await sent.retry_dead(message_id)

        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            return {m.id: "applied" for m in messages}

        # At once (the hold would last up to seconds more): sent, not kept for the hold.
        assert await sent.deliver_due(up, now=dt.datetime.now(dt.UTC)) == 1


async def test_a_message_under_a_key_this_replica_has_not_got_yet_waits(database: Database) -> None:
    """Another replica rotated the keys and re-wrapped it: sent once this one has the new key
    (a restart), not dead-lettered as unreadable."""
    async with ready(database) as (engine, sent, ring):
        message_id = await enqueue(sent, engine, HACKNEY, 1, "consent_withdrawn")
        rotated = ring.with_new_key("k2")
        async with engine.begin() as connection:
            (before,) = (
                await connection.execute(select(outbox.c.sealed).where(outbox.c.id == message_id))
            ).one()
            plain = open_(before, ring, associated_data("outbox", message_id, "sealed"))
            again = seal(plain, rotated, associated_data("outbox", message_id, "sealed"))
            await connection.execute(
                outbox.update()
                .where(outbox.c.id == message_id)
                .values(key_id=again.key_id, sealed=again.to_bytes())
            )

        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            return {m.id: "applied" for m in messages}

        now = dt.datetime.now(dt.UTC)
        assert await sent.deliver_due(up, now=now) == 0
        waiting = await row(engine, message_id)
        assert (waiting.state, waiting.last_error) == ("pending", "key_unknown")
        restarted = Outbox(engine, rotated)
        later = aware_utc(waiting.next_attempt_at)
        assert await restarted.deliver_due(up, now=later) == 1
