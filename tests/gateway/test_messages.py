"""Messages between members (`gateway/federation/outbox.py`), on a real database.

Sending: batches per recipient are cut by size, so a transfer commit carrying a whole episode does not
push a request past the peer's body limit (a 413 used to fail the whole batch until dead-lettered).
Receiving: each message applied once, alone. Only the inbox row decides "duplicate"; a message that
fails (any error) is rolled back and reported, and the others in its batch are applied all the same."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import Conflict
from gateway.federation.outbox import BATCH_BYTES, Message, Outbox, receive
from gateway.protection import KeyRing
from gateway.storage import create_engine, upgrade
from gateway.storage._tables import inbox

from ..conftest import Database

HACKNEY = "E09000012"
applied = Table(
    "test_applied", MetaData(), Column("id", Integer, primary_key=True), Column("kind", String(32))
)


async def test_one_bad_message_fails_alone(database: Database) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            await connection.run_sync(applied.metadata.create_all)

        async def apply(connection: AsyncConnection, sender: str, message: Message) -> None:
            await connection.execute(
                insert(applied).values(id=message.body["n"], kind=message.kind)
            )
            if message.kind == "refused":
                raise Conflict("not for us")
            # "broken" has no "n": a KeyError, as a body missing a field gives

        batch = [
            Message("m1", "fine", {"n": 1}),
            Message("m2", "broken", {}),
            Message("m3", "fine", {"n": 1}),  # a constraint broken while applying: not a duplicate
            Message("m4", "refused", {"n": 4}),
            Message("m5", "fine", {"n": 5}),
        ]
        statuses = await receive(engine, HACKNEY, batch, apply)
        assert statuses == {
            "m1": "applied",
            "m2": "internal_error",
            "m3": "internal_error",
            "m4": "conflict",
            "m5": "applied",
        }
        async with engine.connect() as connection:
            assert sorted((await connection.scalars(select(applied.c.id))).all()) == [1, 5]
            seen = (await connection.scalars(select(inbox.c.message_id))).all()
        assert sorted(seen) == ["m1", "m5"]  # the failed ones can be sent again

        again = await receive(engine, HACKNEY, [batch[0], Message("m2", "fine", {"n": 2})], apply)
        assert again == {"m1": "duplicate", "m2": "applied"}
    finally:
        await engine.dispose()


async def test_batches_are_cut_by_size(database: Database) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        sent = Outbox(engine, KeyRing.generate("k1"))
        big = "x" * (BATCH_BYTES * 6 // 10)
        async with engine.begin() as connection:
            for kind, text in (("first", big), ("second", big), ("third", "small")):
                await sent.enqueue(connection, HACKNEY, kind, {"text": text})
        requests: list[list[str]] = []

        async def send(recipient: str, messages: list[Message]) -> dict[str, str]:
            assert recipient == HACKNEY
            requests.append([m.kind for m in messages])
            return {m.id: "applied" for m in messages}

        assert await sent.counts() == {"pending": 3}
        assert await sent.deliver_due(send) == 3
        assert requests == [["first"], ["second", "third"]]  # in order, each request under the cap
        async with engine.begin() as connection:
            await sent.enqueue(connection, HACKNEY, "fourth", {"text": "small"})
        assert await sent.counts() == {"delivered": 3, "pending": 1}  # as the console shows them
    finally:
        await engine.dispose()
