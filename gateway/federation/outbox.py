"""Messages between members (DESIGN 3.6): written to a transactional outbox in the same transaction as
the change they announce, delivered at least once in batches per recipient, retried with jittered
exponential back-off, dead-lettered with an alert after `MAX_ATTEMPTS`; the receiver applies each
message id exactly once (inbox de-duplication).

Safe with several replicas: PostgreSQL claims due rows with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import GatewayError
from ..protection import KeyRing, associated_data, open_, seal
from ..storage import insert_on_conflict, is_sqlite
from ..storage._tables import inbox, outbox

__all__ = [
    "BASE_DELAY",
    "MAX_ATTEMPTS",
    "MAX_DELAY",
    "Message",
    "Outbox",
    "backoff",
    "receive",
]

log = logging.getLogger("cafx.outbox")

MAX_ATTEMPTS = 8
BASE_DELAY = dt.timedelta(seconds=2)
MAX_DELAY = dt.timedelta(minutes=10)
BATCH = 50
# A batch is one request: kept well under a node's body limit (4 MiB by default), since a transfer
# commit carries a whole episode. A message bigger than this travels alone.
BATCH_BYTES = 1024 * 1024
LEASE = dt.timedelta(seconds=60)  # how long a replica owns the messages it is sending


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    kind: str
    body: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "body": dict(self.body)}


def backoff(attempts: int, rng: random.Random | None = None) -> dt.timedelta:
    """Full-jitter exponential back-off: uniform in [0, min(cap, base * 2^attempts)]."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (1 << min(attempts, 30)))
    fraction: float = (rng or random).random()  # noqa: S311 - jitter, not security
    return ceiling * fraction


def _bound(message_id: str) -> bytes:
    return associated_data("outbox", message_id, "sealed")


Send = Callable[[str, list[Message]], Awaitable[Mapping[str, str]]]  # recipient -> id -> status


class Outbox:
    def __init__(self, engine: AsyncEngine, ring: KeyRing) -> None:
        self.engine, self.ring = engine, ring
        self._sqlite = is_sqlite(engine.url.render_as_string())

    async def enqueue(
        self, connection: AsyncConnection, recipient: str, kind: str, body: Mapping[str, Any]
    ) -> str:
        """Write a message in the caller's transaction; it leaves only if that commits."""
        message_id = str(uuid.uuid4())
        sealed = seal(json.dumps(dict(body)).encode(), self.ring, _bound(message_id))
        now = dt.datetime.now(dt.UTC)
        await connection.execute(
            insert(outbox).values(
                id=message_id,
                recipient=recipient,
                kind=kind,
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                key_id=sealed.key_id,
                sealed=sealed.to_bytes(),
            )
        )
        return message_id

    async def deliver_due(self, send: Send, *, now: dt.datetime | None = None) -> int:
        """One pass: lease due messages, send them per recipient, record each outcome.

        The lease (a later `next_attempt_at`, committed before sending) keeps other replicas off
        these rows while the network call runs, without holding a transaction open across it.
        """
        moment = now or dt.datetime.now(dt.UTC)
        async with self.engine.begin() as connection:
            query = (
                select(outbox)
                .where(outbox.c.state == "pending", outbox.c.next_attempt_at <= moment)
                .order_by(outbox.c.created_at)
                .limit(BATCH)
            )
            if not self._sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = (await connection.execute(query)).all()
            if rows:
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([row.id for row in rows]))
                    .values(next_attempt_at=moment + LEASE)
                )
        by_recipient: dict[str, list[Any]] = {}
        for row in rows:
            by_recipient.setdefault(row.recipient, []).append(row)
        delivered = 0
        for recipient, batch, messages in self._batches(by_recipient):
            try:
                statuses, failure = await send(recipient, messages), None
            except GatewayError as error:
                statuses, failure = {}, error.wire_code
            except Exception as exc:  # one recipient's fault must not hold up the others' messages
                log.error(
                    "sending failed", extra={"recipient": recipient, "error": type(exc).__name__}
                )
                statuses, failure = {}, "internal_error"
            async with self.engine.begin() as connection:
                for row in batch:
                    if statuses.get(row.id) in ("applied", "duplicate"):
                        await connection.execute(
                            update(outbox).where(outbox.c.id == row.id).values(state="delivered")
                        )
                        delivered += 1
                    else:
                        reason = failure or statuses.get(row.id, "no_answer")
                        await self._retry_later(connection, row, reason, moment)
        return delivered

    def _batches(
        self, by_recipient: Mapping[str, list[Any]]
    ) -> Iterator[tuple[str, list[Any], list[Message]]]:
        """Each recipient's rows, opened, in order, cut into requests of at most BATCH_BYTES."""
        for recipient, rows in by_recipient.items():
            batch: list[Any] = []
            messages: list[Message] = []
            size = 0
            for row in rows:
                plain = open_(row.sealed, self.ring, _bound(row.id))
                if batch and size + len(plain) > BATCH_BYTES:
                    yield recipient, batch, messages
                    batch, messages, size = [], [], 0
                batch.append(row)
                messages.append(Message(row.id, row.kind, json.loads(plain)))
                size += len(plain)
            if batch:
                yield recipient, batch, messages

    async def _retry_later(
        self, connection: AsyncConnection, row: Any, reason: str, now: dt.datetime
    ) -> None:
        attempts = row.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            # The alert: an error log line (ids and codes only) that monitoring pages on.
            log.error(
                "message dead-lettered",
                extra={
                    "message_id": row.id,
                    "recipient": row.recipient,
                    "kind": row.kind,
                    "reason": reason,
                },
            )
            values: dict[str, Any] = {
                "state": "dead",
                "attempts": attempts,
                "last_error": reason[:64],
            }
        else:
            values = {
                "attempts": attempts,
                "next_attempt_at": now + backoff(attempts),
                "last_error": reason[:64],
            }
        # Only while still pending: another replica whose lease took over may have delivered it.
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == row.id, outbox.c.state == "pending")
            .values(**values)
        )

    async def retry_dead(self, message_id: str) -> bool:
        """Put a dead-lettered message back in the queue (the console's "retry")."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(outbox)
                .where(outbox.c.id == message_id, outbox.c.state == "dead")
                .values(state="pending", attempts=0, next_attempt_at=dt.datetime.now(dt.UTC))
            )
        return result.rowcount == 1

    async def counts(self) -> dict[str, int]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(outbox.c.state, func.count()).group_by(outbox.c.state)
            )
            return {state: int(count) for state, count in rows.all()}


Apply = Callable[[AsyncConnection, str, Message], Awaitable[None]]
Begin = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


async def receive(
    engine: AsyncEngine,
    sender: str,
    messages: Sequence[Message],
    apply: Apply,
    *,
    begin: Begin | None = None,
) -> dict[str, str]:
    """Apply each message once: `applied`, `duplicate` (seen before), or the error code.

    `begin` opens each message's transaction (default: the engine's); pass the audit log's when
    applying a message appends audit entries."""
    statuses: dict[str, str] = {}
    for message in messages:
        try:
            async with (begin or engine.begin)() as connection:
                # Only the inbox row decides "duplicate": a constraint broken while applying is a
                # failure the sender must retry, not a message to drop as already seen.
                seen = insert_on_conflict(engine, inbox).values(
                    sender=sender, message_id=message.id, received_at=dt.datetime.now(dt.UTC)
                )
                fresh = await connection.execute(
                    seen.on_conflict_do_nothing().returning(inbox.c.message_id)
                )
                if fresh.first() is None:
                    statuses[message.id] = "duplicate"
                    continue
                await apply(connection, sender, message)
            statuses[message.id] = "applied"
        except GatewayError as error:
            statuses[message.id] = error.wire_code
        except Exception as exc:  # one bad message fails alone, its transaction rolled back
            log.error(
                "message not applied",
                extra={"message_id": message.id, "kind": message.kind, "error": type(exc).__name__},
            )
            statuses[message.id] = "internal_error"
    return statuses
