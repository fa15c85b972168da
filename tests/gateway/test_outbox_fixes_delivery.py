"""Delivering the outbox when a recipient refuses, cannot be reached for good, or answers wrongly
(`gateway/federation/outbox.py`), on a real database, to real peers over HTTP.

- A batch refused whole for what it holds (an older release's 422 on a kind it does not know, a 413
  under a body limit below ours) is sent again one message at a time: only the message refused on
  its own backs off. It used to hold the recipient and resend the same batch until every message
  to it was dead-lettered.
- A message to an authority that is not a member is dead-lettered at once, with a warning; it used
  to be retried for 72 h as `internal_error`, with an ERROR log line at every attempt.
- A transfer commit or a consent withdrawal is never dead-lettered by age: it raises the alert once
  and goes on (a suspended member's among them).
- An acknowledgement that is not a string, or not an error code, fails only its own message and
  is stored and logged as `bad_answer`; it used to roll back its batch's other deliveries.
- A hold is kept in the rows: after a restart the held messages still go first.

The peers answer as a node does, through `acknowledged`, the reading of an answer the node's `send`
uses too."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from sqlalchemy import select

from gateway.errors import (
    BadRequest,
    FederationRefused,
    PayloadTooLarge,
    PeerUnavailable,
    SchemaViolation,
    UnsupportedFormat,
)
from gateway.federation.outbox import (
    DELIVERY_DEADLINE,
    MAX_DELAY,
    PER_RECIPIENT,
    Message,
    Outbox,
    Send,
    acknowledged,
)
from gateway.storage import aware_utc
from gateway.storage._tables import outbox

from ..conftest import Database
from .test_outbox_delivery import CAMDEN, HACKNEY, SECRET, down, enqueue, ready, row

OLDER_KINDS = {"tac_notification", "transfer_commit", "consent_withdrawn"}


class Recipient:
    """A member's `POST /messages` as an older release validates it: the whole batch at once (a
    kind it does not know is a 422 for all), and under a body limit (413)."""

    def __init__(self, *, body_limit: int = 4 * 1024 * 1024) -> None:
        self.body_limit = body_limit
        self.requests: list[list[int]] = []
        self.answer: Callable[[list[dict[str, Any]]], Any] | None = None

    async def messages(self, request: web.Request) -> web.Response:
        raw = await request.read()
        batch = json.loads(raw)["messages"] if len(raw) <= self.body_limit else []
        self.requests.append([m["body"]["n"] for m in batch])
        if len(raw) > self.body_limit:
            return web.json_response({"error": "payload_too_large"}, status=413)
        if any(m["kind"] not in OLDER_KINDS for m in batch):
            return web.json_response({"error": "schema_violation"}, status=422)
        if self.answer is not None:
            return web.json_response(self.answer(batch))
        acks = [{"id": m["id"], "status": "applied"} for m in batch]
        return web.json_response({"acknowledgements": acks})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/messages", self.messages)
        return app


Serve = Callable[[Mapping[str, Recipient]], Awaitable[Send]]


@pytest.fixture
async def peers(aiohttp_server: AiohttpServer) -> AsyncIterator[Serve]:
    """Starts the recipients named; gives a `send` that reads their answers as the node's does."""
    session = aiohttp.ClientSession()

    async def serve(named: Mapping[str, Recipient]) -> Send:
        urls = {
            m: str((await aiohttp_server(p.app())).make_url("/messages")) for m, p in named.items()
        }

        async def send(recipient: str, messages: list[Message]) -> dict[str, str]:
            body = {"messages": [m.as_json() for m in messages]}
            async with session.post(urls[recipient], json=body) as reply:
                return acknowledged(reply.status, await reply.json())

        return send

    yield serve
    await session.close()


async def test_a_batch_refused_whole_goes_again_one_message_at_a_time(
    database: Database, peers: Serve
) -> None:
    older = Recipient()
    send = await peers({HACKNEY: older})
    async with ready(database) as (engine, sent, _):
        await enqueue(sent, engine, HACKNEY, 0, "tac_notification")
        newer = await enqueue(sent, engine, HACKNEY, 1, "case_closed_notice")  # a later release's
        await enqueue(sent, engine, HACKNEY, 2, "transfer_commit")
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(send, now=moment) == 2
        # refused whole, then each alone, in order: only the one the recipient cannot take fails
        assert older.requests == [[0, 1, 2], [0], [1], [2]]
        kept = await row(engine, newer)
        assert (kept.state, kept.attempts, kept.last_error) == ("pending", 1, "schema_violation")

        # not held: a message written since goes at once
        await enqueue(sent, engine, HACKNEY, 3, "consent_withdrawn")
        assert await sent.deliver_due(send, now=moment) == 1
        assert older.requests[-1] == [3]

        # the refused one fails alone until its deadline, then is dead-lettered on its own
        created = aware_utc(kept.created_at)
        await sent.deliver_due(send, now=created + DELIVERY_DEADLINE + MAX_DELAY)
        dead = await row(engine, newer)
        assert (dead.state, dead.last_error) == ("dead", "schema_violation")
        assert await sent.counts() == {"delivered": 3, "dead": 1}


async def test_a_body_limit_below_a_batch_fails_only_the_message_above_it(
    database: Database, peers: Serve
) -> None:
    small = Recipient(body_limit=8 * 1024)  # Settings allow a node a limit down to 1 KiB
    send = await peers({CAMDEN: small})
    async with ready(database) as (engine, sent, _):
        async with engine.begin() as connection:
            for n in range(3):
                await sent.enqueue(
                    connection, CAMDEN, "tac_notification", {"n": n, "x": "a" * 3000}
                )
            big = await sent.enqueue(
                connection, CAMDEN, "transfer_commit", {"n": 3, "episode": "e" * 9000}
            )
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(send, now=moment) == 3
        assert small.requests == [[], [0], [1], [2], []]  # the batch, then each alone
        kept = await row(engine, big)
        assert (kept.state, kept.attempts, kept.last_error) == ("pending", 1, "payload_too_large")


async def test_a_message_to_an_authority_outside_the_federation_is_dead_lettered_at_once_but_a_withdrawal(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    outsider = "E09000001"  # a TAC member's authority that is not a member

    async def send(recipient: str, messages: list[Message]) -> dict[str, str]:
        if recipient == outsider:  # as the node's send maps the member directory's refusal
            raise FederationRefused(f"{outsider} is not a member", code="unknown_member")
        return {m.id: "applied" for m in messages}

    async with ready(database) as (engine, sent, _):
        ids = [await enqueue(sent, engine, outsider, n, "tac_notification") for n in range(2)]
        withdrawn = await enqueue(sent, engine, outsider, 2, "consent_withdrawn")
        await enqueue(sent, engine, CAMDEN, 3, "tac_notification")
        with caplog.at_level(logging.INFO, logger="cafx.outbox"):
            assert await sent.deliver_due(send, now=dt.datetime.now(dt.UTC)) == 1
        for message_id in ids:
            dead = await row(engine, message_id)
            assert (dead.state, dead.attempts, dead.last_error) == ("dead", 1, "unknown_member")
        kept = await row(engine, withdrawn)  # kept until delivered: backs off (metadata may lag)
        assert (kept.state, kept.attempts, kept.last_error) == ("pending", 1, "unknown_member")
        records = [r for r in caplog.records if r.name == "cafx.outbox"]
        assert [(r.levelno, r.getMessage()) for r in records] == [
            (logging.WARNING, "message dead-lettered")
        ] * 2  # one warning a message: no alert, no "sending failed"
        assert {r.__dict__["reason"] for r in records} == {"unknown_member"}
        assert all(SECRET not in json.dumps(r.__dict__, default=str) for r in records)


async def test_a_commit_and_a_withdrawal_are_never_dead_lettered_by_age(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async def suspended(recipient: str, messages: list[Message]) -> dict[str, str]:
        raise FederationRefused(f"{recipient} is suspended", code="member_suspended")

    async with ready(database) as (engine, _, ring):
        sent = Outbox(engine, ring, deadline=dt.timedelta(hours=1))  # a suspension outlasts it
        commit = await enqueue(sent, engine, HACKNEY, 1, "transfer_commit")
        withdrawal = await enqueue(sent, engine, HACKNEY, 2, "consent_withdrawn")
        notice = await enqueue(sent, engine, HACKNEY, 3, "tac_notification")
        created = aware_utc((await row(engine, commit)).created_at)
        moment = created
        with caplog.at_level(logging.ERROR, logger="cafx.outbox"):
            for _ in range(500):  # each pass when they are due again, 3 hours on
                await sent.deliver_due(suspended, now=moment)
                kept = [await row(engine, m) for m in (commit, withdrawal)]
                moment = max(aware_utc(r.next_attempt_at) for r in kept)
                if moment > created + dt.timedelta(hours=3) or "dead" in {r.state for r in kept}:
                    break
        for message_id in (commit, withdrawal):
            kept = await row(engine, message_id)
            assert (kept.state, kept.last_error) == ("pending", "member_suspended")
            assert kept.attempts > 20
            assert aware_utc(kept.next_attempt_at) - moment <= MAX_DELAY
        assert (await row(engine, notice)).state == "dead"  # other kinds keep the deadline
        alerts = [(r.getMessage(), r.__dict__["message_id"]) for r in caplog.records]
        assert sorted(alerts) == sorted(
            [
                ("message dead-lettered", notice),
                ("message overdue", commit),  # once each
                ("message overdue", withdrawal),
            ]
        )

        # reinstated: delivered, long past the deadline
        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            return {m.id: "applied" for m in messages}

        assert await sent.deliver_due(up, now=moment) == 2
        assert await sent.counts() == {"delivered": 2, "dead": 1}


async def test_a_malformed_acknowledgement_fails_only_its_own_message(
    database: Database, peers: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[Any] = ["applied", {"x": 1}, "Call 020 7946 0000 about this child"]
    faulty = Recipient()
    faulty.answer = lambda batch: {
        "acknowledgements": [
            *({"id": m["id"], "status": answers[m["body"]["n"]]} for m in batch),
            {"id": 7, "status": "applied"},
            "applied",
        ]
    }
    send = await peers({HACKNEY: faulty})
    async with ready(database) as (engine, sent, _):
        ids = [await enqueue(sent, engine, HACKNEY, n, "tac_notification") for n in range(3)]
        created = aware_utc((await row(engine, ids[0])).created_at)
        assert await sent.deliver_due(send, now=created + dt.timedelta(seconds=1)) == 1
        states = [await row(engine, m) for m in ids]
        assert [(r.state, r.attempts, r.last_error) for r in states] == [
            ("delivered", 0, None),
            ("pending", 1, "no_answer"),
            ("pending", 1, "bad_answer"),
        ]
        with caplog.at_level(logging.ERROR, logger="cafx.outbox"):
            await sent.deliver_due(send, now=created + DELIVERY_DEADLINE + MAX_DELAY)
        assert [(await row(engine, m)).state for m in ids[1:]] == ["dead", "dead"]
        reasons = [r.__dict__["reason"] for r in caplog.records]
        assert sorted(reasons) == ["bad_answer", "no_answer"]
        assert all("020 7946" not in json.dumps(r.__dict__, default=str) for r in caplog.records)


async def test_a_status_that_is_not_an_error_code_is_stored_as_bad_answer(
    database: Database,
) -> None:
    async def chatty(recipient: str, messages: list[Message]) -> dict[str, str]:
        return {m.id: "see https://example.org/why?child=Ada" for m in messages}

    async with ready(database) as (engine, sent, _):
        message_id = await enqueue(sent, engine, HACKNEY, 1, "tac_notification")
        await sent.deliver_due(chatty, now=dt.datetime.now(dt.UTC))
        assert (await row(engine, message_id)).last_error == "bad_answer"


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        (400, BadRequest),
        (413, PayloadTooLarge),
        (415, UnsupportedFormat),
        (422, SchemaViolation),
        (403, PeerUnavailable),
        (500, PeerUnavailable),
        (503, PeerUnavailable),
    ],
)
def test_how_an_answer_refusing_a_batch_is_read(status: int, raised: type[Exception]) -> None:
    with pytest.raises(raised) as caught:
        acknowledged(status, {"error": "x"})
    assert type(caught.value) is raised


@pytest.mark.parametrize(
    ("body", "read"),
    [
        ({"acknowledgements": [{"id": "m1", "status": "applied"}]}, {"m1": "applied"}),
        ({"acknowledgements": [{"id": "m1", "status": "not_found"}]}, {"m1": "not_found"}),
        ({"acknowledgements": [{"id": "m1", "status": "Not Found"}]}, {"m1": "bad_answer"}),
        ({"acknowledgements": [{"id": "m1", "status": "a" * 65}]}, {"m1": "bad_answer"}),
        ({"acknowledgements": [{"id": "m1", "status": None}]}, {}),
        ({"acknowledgements": [{"id": ["m1"], "status": "applied"}]}, {}),
        ({"acknowledgements": [{"id": "m1"}]}, {}),
        ({"acknowledgements": {"m1": "applied"}}, {}),
        ({"acknowledgements": ["m1"]}, {}),
        ({}, {}),
    ],
)
def test_how_acknowledgements_are_read(body: Any, read: dict[str, str]) -> None:
    assert acknowledged(200, body) == read


def test_an_answer_that_is_not_an_object_is_no_answer() -> None:
    bodies: list[Any] = [[], None, "applied"]
    for body in bodies:
        with pytest.raises(PeerUnavailable):
            acknowledged(200, body)


async def test_a_hold_is_kept_in_the_rows_across_a_restart(database: Database) -> None:
    async with ready(database) as (engine, sent, ring):
        ids = [await enqueue(sent, engine, HACKNEY, n, "tac_notification") for n in range(25)]
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert await sent.deliver_due(down, now=moment) == 0
        async with engine.connect() as connection:
            times = (
                await connection.scalars(
                    select(outbox.c.next_attempt_at).where(outbox.c.id.in_(ids))
                )
            ).all()
        resume = aware_utc((await row(engine, ids[0])).next_attempt_at)
        assert {aware_utc(t) for t in times} == {resume}  # those not claimed wait too
        assert [(await row(engine, m)).attempts for m in ids[PER_RECIPIENT:]] == [0] * 5

        restarted = Outbox(engine, ring)  # no memory of the hold
        requests: list[list[int]] = []

        async def up(recipient: str, messages: list[Message]) -> dict[str, str]:
            requests.append([m.body["n"] for m in messages])
            return {m.id: "applied" for m in messages}

        if resume > moment:
            assert await restarted.deliver_due(up, now=moment) == 0
        assert await restarted.deliver_due(up, now=resume) == PER_RECIPIENT
        assert await restarted.deliver_due(up, now=resume) == 5
        assert requests == [list(range(PER_RECIPIENT)), list(range(PER_RECIPIENT, 25))]
