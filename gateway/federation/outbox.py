"""Messages between members (DESIGN 3.6): written to a transactional outbox in the same transaction as
the change they announce, delivered at least once in batches per recipient, retried with jittered
exponential back-off (capped at `MAX_DELAY`) until `DELIVERY_DEADLINE` after they were written, then
dead-lettered with an alert; the receiver applies each message id exactly once (inbox de-duplication).
A transfer commit or a consent withdrawal (`KEPT_UNTIL_DELIVERED`) is never given up by age: past the
deadline it raises the alert (again each day it stays undelivered) and goes on being retried; the
console lists it, and an operator who has dealt with it otherwise can give it up (`give_up`). A
message to an authority that is not a member (`unknown_member`) is dead-lettered at once, with a
warning: no retry can reach it; one kept until delivered backs off instead (the sending replica's
metadata may lag a join, or a version may leave a member out by mistake).

One peer must not hold up the others. A pass serves up to `RECIPIENTS` recipients at once, each with
up to `PER_RECIPIENT` of its oldest due messages, sent in order. A recipient that gives no answer
(unreachable, timed out, suspended, the request refused) is held back as a whole: all its pending
messages wait with the ones that failed (in the database: every replica, and a restart, keeps the
hold for them) and come back together, in order, instead of each paying its own timeout. A message
written during a hold waits only on the replica that held (in its memory): another replica, or this
one after a restart, sends it when it is due. A request refused for what it holds (`acknowledged`:
400, 413, 415, 422) is sent again one message at a time, so that only a message refused on its own
fails, alone, and the others go.

A delivered message keeps its id, kind, recipient and times (for the audit), not its body.

Safe with several replicas: PostgreSQL claims due rows with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    PeerUnavailable,
    SchemaViolation,
    UnsupportedFormat,
)
from ..protection import KeyRing, ProtectionError, associated_data, open_, seal
from ..storage import aware_utc, insert_on_conflict, is_sqlite
from ..storage._tables import inbox, outbox

__all__ = [
    "BASE_DELAY",
    "DELIVERY_DEADLINE",
    "KEPT_UNTIL_DELIVERED",
    "MAX_DELAY",
    "Message",
    "Outbox",
    "acknowledged",
    "backoff",
    "receive",
]

log = logging.getLogger("cafx.outbox")

BASE_DELAY = dt.timedelta(seconds=2)
MAX_DELAY = dt.timedelta(minutes=10)
# Given up by age, not by count: a peer down for a deploy, a night or a weekend (Friday evening to
# Monday morning is about 63 hours) still gets its messages, a transfer commit among them.
DELIVERY_DEADLINE = dt.timedelta(hours=72)
# Never given up by age: a lost transfer commit leaves the episode with nobody holding it (DESIGN
# 3.6), and telling a recipient of a withdrawal is a legal duty (DESIGN 3.5). A bank-holiday weekend,
# or a member suspended for an investigation, outlasts any deadline. Past it they raise the alert
# once and keep their capped back-off.
KEPT_UNTIL_DELIVERED = frozenset({"transfer_commit", "consent_withdrawn"})
REMINDER = dt.timedelta(days=1)  # how often the alert for one still undelivered is raised again
RECIPIENTS = 16  # recipients served in one pass, all at once
PER_RECIPIENT = 20  # of each one's oldest due messages
# A batch is one request: kept well under a node's body limit (4 MiB by default), since a transfer
# commit carries a whole episode. A message bigger than this travels alone.
BATCH_BYTES = 1024 * 1024
LEASE = dt.timedelta(seconds=60)  # how long a replica owns the messages it is sending
CLEARING = 500  # bodies delivered before they were cleared on delivery, cleared per pass
# What a stored or logged reason may be: an error code (as in `practitioner.py`), never a peer's text.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# A request refused for what it holds, not for who sent it or when: one of its messages may be the
# cause (a kind or an id an older release does not take, a body limit below `BATCH_BYTES`).
_REFUSED_FOR_CONTENT: dict[int, type[BadRequest]] = {
    400: BadRequest,
    413: PayloadTooLarge,
    415: UnsupportedFormat,
    422: SchemaViolation,
}


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


def acknowledged(status: int, body: Any) -> dict[str, str]:
    """What a recipient's answer to `POST /messages` says: each message id it acknowledged, with
    its status (`applied`, `duplicate` or an error code).

    A refusal of the request for what it holds (400, 413, 415, 422) raises that `BadRequest`: the
    outbox then sends the messages one at a time. Any other answer than a 200 with a JSON object is
    `PeerUnavailable`. An acknowledgement whose id or status is not a string is left out (its
    message counts as unanswered), and a status that is not an error code is `bad_answer`: a
    faulty peer's answer neither fails the rest of its batch nor puts its own text in our logs."""
    refused = _REFUSED_FOR_CONTENT.get(status)
    if refused is not None:
        raise refused(f"messages refused ({status})")
    if status != 200 or not isinstance(body, dict):
        raise PeerUnavailable(f"messages refused ({status})")
    entries = body.get("acknowledgements")
    statuses: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        message_id, answer = entry.get("id"), entry.get("status")
        if isinstance(message_id, str) and isinstance(answer, str):
            statuses[message_id] = answer if _ERROR_CODE.fullmatch(answer) else "bad_answer"
    return statuses


Send = Callable[[str, list[Message]], Awaitable[Mapping[str, str]]]  # recipient -> id -> status
Batch = tuple[list[Any], list[Message], int]  # rows, their messages, the bodies' size


class Outbox:
    def __init__(
        self, engine: AsyncEngine, ring: KeyRing, *, deadline: dt.timedelta = DELIVERY_DEADLINE
    ) -> None:
        self.engine, self.ring, self.deadline = engine, ring, deadline
        self._sqlite = is_sqlite(engine.url.render_as_string())
        # Recipients held back as a whole, until when: this replica's view (the rows' own
        # `next_attempt_at` tells the others). It also keeps back messages written meanwhile, so
        # they neither overtake the held ones nor each wait out a timeout of their own.
        self._held: dict[str, dt.datetime] = {}
        self._cleared_before = False

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
        """One pass: lease due messages, send them to each recipient at once, record each outcome.

        The lease (a later `next_attempt_at`, committed before sending) keeps other replicas off
        these rows while the network calls run, without holding a transaction open across them.
        """
        moment = now or dt.datetime.now(dt.UTC)
        started = time.monotonic()

        def clock() -> dt.datetime:
            """The pass's time now: an outcome is timed from when it came, not from the start
            (a hold counted from before a 30 s timeout would be over when recorded)."""
            return moment + dt.timedelta(seconds=time.monotonic() - started)

        await self._clear_delivered_before()
        claimed = await self._claim(moment)
        leased = moment + LEASE  # what `_claim` set: renewed only where it is still so
        results = await asyncio.gather(
            *(
                self._serve(send, recipient, rows, clock, leased)
                for recipient, rows in claimed.items()
            ),
            return_exceptions=True,  # every recipient's outcome is recorded before one is raised
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(result for result in results if isinstance(result, int))

    async def _claim(self, moment: dt.datetime) -> dict[str, list[Any]]:
        """Lease the oldest due messages of each of the recipients waiting longest (none held)."""
        self._held = {r: until for r, until in self._held.items() if until > moment}
        due = (outbox.c.state == "pending") & (outbox.c.next_attempt_at <= moment)
        waiting = (
            select(outbox.c.recipient)
            .where(due)
            .group_by(outbox.c.recipient)
            .order_by(func.min(outbox.c.created_at))
            .limit(RECIPIENTS)
        )
        if self._held:
            waiting = waiting.where(outbox.c.recipient.not_in(list(self._held)))
        claimed: dict[str, list[Any]] = {}
        async with self.engine.begin() as connection:
            for recipient in (await connection.scalars(waiting)).all():
                query = (
                    select(outbox)
                    .where(due, outbox.c.recipient == recipient)
                    .order_by(outbox.c.created_at, outbox.c.id)
                    .limit(PER_RECIPIENT)
                )
                if not self._sqlite:
                    query = query.with_for_update(skip_locked=True)
                rows = list((await connection.execute(query)).all())
                if rows:
                    claimed[recipient] = rows
            ids = [row.id for rows in claimed.values() for row in rows]
            if ids:
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(ids))
                    .values(next_attempt_at=moment + LEASE)
                )
        return claimed

    async def _serve(
        self,
        send: Send,
        recipient: str,
        rows: list[Any],
        clock: Callable[[], dt.datetime],
        leased: dt.datetime,
    ) -> int:
        """Send one recipient its messages, batch after batch, in order; how many were delivered.

        A request that gets no answer holds the recipient back with every message not yet sent. A
        request refused for what it holds is made again one message at a time: a message refused
        on its own then backs off alone, and the others go. A recipient that is not a member has
        its messages dead-lettered: no retry reaches it."""
        unreadable: list[Any] = []
        unopened: list[Any] = []
        batches = self._batches(rows, unreadable, unopened)
        if unreadable or unopened:  # set aside, so that the others still go
            async with self.engine.begin() as connection:
                for row in unreadable:  # dead-lettered at once, with the alert
                    await self._retry_later(connection, row, "unreadable", clock(), hopeless=True)
                for row in unopened:  # backs off as a failed send does, until its deadline
                    await self._retry_later(connection, row, "key_unknown", clock(), tried=False)
        delivered = 0
        while batches:
            batch, messages, size = batches.pop(0)
            statuses, failure, refused = await self._send(send, recipient, messages)
            if batches:  # still this pass's while it sends them: a request may take its 30 s
                batches, leased = await self._renew(batch, batches, leased, clock())
            untried = [row for later, _, _ in batches for row in later]
            if failure == "unknown_member":  # not (or no longer) a member of the federation
                async with self.engine.begin() as connection:
                    for row in [*batch, *untried]:
                        # One kept until delivered backs off: this replica's metadata may lag a
                        # join, or a version leave a member out by mistake.
                        await self._retry_later(
                            connection,
                            row,
                            failure,
                            clock(),
                            tried=row in batch,
                            hopeless=row.kind not in KEPT_UNTIL_DELIVERED,
                            alert=False,
                        )
                return delivered
            if refused and len(batch) > 1:
                alone = zip(batch, messages, strict=True)
                batches[:0] = [([row], [message], size) for row, message in alone]
                continue
            if failure is not None and not refused and size <= BATCH_BYTES:
                await self._hold(recipient, batch, untried, failure, clock())
                return delivered
            # A message refused on its own, or too big to share a request and refused or lost
            # (a peer may refuse it for its size alone): it fails by itself, on its own back-off,
            # and the recipient's other messages go on.
            async with self.engine.begin() as connection:
                for row in batch:
                    status = statuses.get(row.id)
                    if status in ("applied", "duplicate"):
                        await self._delivered(connection, row)
                        delivered += 1
                    else:
                        await self._retry_later(
                            connection, row, failure or status or "no_answer", clock()
                        )
        return delivered

    async def _renew(
        self, sent: list[Any], batches: list[Batch], leased: dt.datetime, now: dt.datetime
    ) -> tuple[list[Batch], dt.datetime]:
        """Lease the messages of `batches` again, from `now`, where this pass's lease (`leased`)
        still stands; the batches left to this pass, and their lease. The rows just `sent` are
        leased again with them (not left out: their outcome is this pass's to record), so that,
        refused together and sent again one by one, they still hold this pass's lease. A message
        whose lease ran out, and another replica took (to send, hold or back off), is that
        replica's: left out here, never sent twice at once, its outcome not overwritten. Rows
        another replica has locked are skipped, not waited for (as in `_claim`)."""
        ids = [row.id for row in sent] + [row.id for rows, _, _ in batches for row in rows]
        renewed = now + LEASE
        async with self.engine.begin() as connection:
            query = select(outbox.c.id).where(
                outbox.c.id.in_(ids),
                outbox.c.state == "pending",
                outbox.c.next_attempt_at == leased,
            )
            if not self._sqlite:
                query = query.with_for_update(skip_locked=True)
            ours = set((await connection.scalars(query)).all())
            if ours:
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(sorted(ours)))
                    .values(next_attempt_at=renewed)
                )
        kept: list[Batch] = []
        for rows, messages, size in batches:
            left = [(row, m) for row, m in zip(rows, messages, strict=True) if row.id in ours]
            if left:
                kept.append(([row for row, _ in left], [m for _, m in left], size))
        return kept, renewed

    @staticmethod
    async def _send(
        send: Send, recipient: str, messages: list[Message]
    ) -> tuple[Mapping[str, str], str | None, bool]:
        """The statuses acknowledged, or the failure's code; and whether the recipient refused the
        request for what it holds (a `BadRequest`), not for want of an answer."""
        try:
            return await send(recipient, messages), None, False
        except BadRequest as error:
            return {}, error.wire_code, True
        except GatewayError as error:
            return {}, error.wire_code, False
        except Exception as exc:  # one recipient's fault must not hold up the others' messages
            log.error("sending failed", extra={"recipient": recipient, "error": type(exc).__name__})
            return {}, "internal_error", False

    def _batches(
        self, rows: Sequence[Any], unreadable: list[Any], unopened: list[Any]
    ) -> list[Batch]:
        """A recipient's rows, opened, in order, cut into requests of at most BATCH_BYTES. A row
        sealed under a key this replica does not hold yet (another re-wrapped it after a key
        rotation: a restart brings the key) goes to `unopened`, and waits; one that cannot be
        opened with the key it names, or holds no message, to `unreadable`: no retry sends it."""
        batches: list[Batch] = []
        batch: list[Any] = []
        messages: list[Message] = []
        size = 0
        for row in rows:
            try:
                plain = open_(row.sealed, self.ring, _bound(row.id))
                body = json.loads(plain)
            except ProtectionError as exc:
                (unopened if exc.rule == "kek.unknown" else unreadable).append(row)
                continue
            except ValueError:  # a body cleared on delivery, or spoilt
                unreadable.append(row)
                continue
            if batch and size + len(plain) > BATCH_BYTES:
                batches.append((batch, messages, size))
                batch, messages, size = [], [], 0
            batch.append(row)
            messages.append(Message(row.id, row.kind, body))
            size += len(plain)
        if batch:
            batches.append((batch, messages, size))
        return batches

    async def _hold(
        self,
        recipient: str,
        failed: Sequence[Any],
        untried: Sequence[Any],
        reason: str,
        now: dt.datetime,
    ) -> None:
        """Back the recipient off as a whole: the failed messages, those not tried in this pass and
        its other pending messages due before then all wait until one moment, so they come back
        together and in order. Stored in the rows: other replicas, and this one after a restart,
        keep the hold (and the order) too. The others are moved only if no other transaction has
        them locked (`SKIP LOCKED`): two replicas holding one recipient at once would otherwise
        each wait on the rows the other is writing (a deadlock on PostgreSQL); the other replica
        records its own rows' outcome."""
        until = now + backoff(1 + max(row.attempts for row in failed))
        self._held[recipient] = until
        log.warning(
            "recipient held back",
            extra={
                "recipient": recipient,
                "reason": _code(reason),
                "messages": len(failed) + len(untried),
            },
        )
        waiting = (
            (outbox.c.recipient == recipient)
            & (outbox.c.state == "pending")
            & (outbox.c.next_attempt_at < until)
        )
        async with self.engine.begin() as connection:
            for row in failed:
                await self._retry_later(connection, row, reason, now, until=until)
            for row in untried:  # not sent: not an attempt of their own
                await self._retry_later(connection, row, reason, now, until=until, tried=False)
            # The others (those two now wait until then): in one statement, those no other
            # transaction has locked. Any kept until delivered that this moves past its deadline
            # raises the alert, as a retry would.
            reaching = select(
                outbox.c.id,
                outbox.c.recipient,
                outbox.c.kind,
                outbox.c.attempts,
                outbox.c.created_at,
                outbox.c.next_attempt_at,
            ).where(
                waiting,
                outbox.c.kind.in_(sorted(KEPT_UNTIL_DELIVERED)),
                outbox.c.created_at <= until - self.deadline,
            )
            others = select(outbox.c.id).where(waiting)
            if not self._sqlite:  # SQLite serialises writers: nothing is locked by another
                reaching = reaching.with_for_update(skip_locked=True)
                others = others.with_for_update(skip_locked=True)
            for row in (await connection.execute(reaching)).all():
                self._overdue(row, reason, row.attempts, until)
            await connection.execute(
                update(outbox).where(outbox.c.id.in_(others)).values(next_attempt_at=until)
            )

    async def _delivered(self, connection: AsyncConnection, row: Any) -> None:
        """Mark it delivered and drop its body: the receiver has it, and nothing sends a delivered
        message again. The column is required and key rotation re-wraps every value in it, so
        the body is replaced by an empty one, sealed: it holds nothing and still re-wraps."""
        empty = seal(b"", self.ring, _bound(row.id))
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == row.id)
            .values(state="delivered", key_id=empty.key_id, sealed=empty.to_bytes())
        )

    async def _clear_delivered_before(self) -> None:
        """Clear the bodies of messages delivered before bodies were dropped on delivery, a
        chunk a pass until none is left (a body sealed empty is the envelope's bare overhead)."""
        if self._cleared_before:
            return
        empty = seal(b"", self.ring, b"")
        overhead = len(empty.to_bytes()) - len(empty.key_id)
        async with self.engine.begin() as connection:
            query = (
                select(outbox.c.id)
                .where(
                    outbox.c.state == "delivered",
                    func.length(outbox.c.sealed) - func.length(outbox.c.key_id) > overhead,
                )
                .limit(CLEARING)
            )
            ids = (await connection.scalars(query)).all()
            for message_id in ids:
                cleared = seal(b"", self.ring, _bound(message_id))
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id == message_id, outbox.c.state == "delivered")
                    .values(key_id=cleared.key_id, sealed=cleared.to_bytes())
                )
        self._cleared_before = len(ids) < CLEARING

    async def _retry_later(
        self,
        connection: AsyncConnection,
        row: Any,
        reason: str,
        now: dt.datetime,
        *,
        until: dt.datetime | None = None,
        tried: bool = True,
        hopeless: bool = False,
        alert: bool = True,
    ) -> None:
        """Back off, or dead-letter a message past its deadline (or `hopeless`: no retry can send
        it; with the alert unless `alert` is false: a warning then). `until`: when its held
        recipient is served again; `tried`: whether it was sent (an attempt) or only held back.
        A message `KEPT_UNTIL_DELIVERED` is not dead-lettered by age: the alert is raised when its
        next attempt is first set past its deadline, and it keeps its back-off."""
        attempts = row.attempts + (1 if tried else 0)
        reason = _code(reason)
        overdue = now - aware_utc(row.created_at) >= self.deadline
        if hopeless or (overdue and row.kind not in KEPT_UNTIL_DELIVERED):
            # The alert: an error log line (ids and codes only) that monitoring pages on.
            (log.error if alert else log.warning)(
                "message dead-lettered",
                extra={
                    "message_id": row.id,
                    "recipient": row.recipient,
                    "kind": row.kind,
                    "reason": reason,
                    "attempts": attempts,
                },
            )
            values: dict[str, Any] = {"state": "dead", "attempts": attempts, "last_error": reason}
        else:
            later = until or now + backoff(attempts)
            if row.kind in KEPT_UNTIL_DELIVERED:
                self._overdue(row, reason, attempts, later)
            values = {"attempts": attempts, "next_attempt_at": later, "last_error": reason}
        # Only while still pending: another replica whose lease took over may have delivered it.
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == row.id, outbox.c.state == "pending")
            .values(**values)
        )

    def _overdue(self, row: Any, reason: str, attempts: int, later: dt.datetime) -> None:
        """The alert for a message kept until delivered: when its next attempt (`later`) is set
        past its deadline, from before it (as `row` was read), and again past each `REMINDER`
        after it, so one stuck for weeks is not announced once only. A pass cut off mid-send
        leaves its lease as the next attempt, and can let one such moment pass unannounced."""
        deadline = aware_utc(row.created_at) + self.deadline
        if later < deadline:
            return
        due = deadline + REMINDER * ((later - deadline) // REMINDER)  # the latest one reached
        if aware_utc(row.next_attempt_at) < due <= later:
            log.error(
                "message overdue",
                extra={
                    "message_id": row.id,
                    "recipient": row.recipient,
                    "kind": row.kind,
                    "reason": _code(reason),
                    "attempts": attempts,
                },
            )

    @asynccontextmanager
    async def _within(self, connection: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        """The caller's transaction (an audit entry with the change), else one of its own."""
        if connection is not None:
            yield connection
            return
        async with self.engine.begin() as own:
            yield own

    async def retry_dead(self, message_id: str, connection: AsyncConnection | None = None) -> bool:
        """Put a dead-lettered message back in the queue (the console's "retry"). It keeps its
        deadline: it is sent again at once, and dead-lettered again (the alert too) if that fails;
        a message kept until delivered (dead-lettered only as hopeless) is retried until then."""
        async with self._within(connection) as connection:
            recipient = await connection.scalar(
                select(outbox.c.recipient).where(
                    outbox.c.id == message_id, outbox.c.state == "dead"
                )
            )
            result = await connection.execute(
                update(outbox)
                .where(outbox.c.id == message_id, outbox.c.state == "dead")
                .values(state="pending", attempts=0, next_attempt_at=dt.datetime.now(dt.UTC))
            )
        if result.rowcount == 1 and recipient is not None:
            self._held.pop(recipient, None)  # an operator's retry is not kept waiting here
        return result.rowcount == 1

    def _kept_overdue(self) -> Any:
        """Pending messages kept until delivered that are past their deadline (a message of
        another kind there is about to be dead-lettered at its next failure)."""
        cutoff = dt.datetime.now(dt.UTC) - self.deadline
        return (
            (outbox.c.state == "pending")
            & (outbox.c.created_at <= cutoff)
            & outbox.c.kind.in_(sorted(KEPT_UNTIL_DELIVERED))
        )

    async def give_up(self, message_id: str, connection: AsyncConnection | None = None) -> bool:
        """Dead-letter a pending message past its deadline (the console's "give up", once an
        operator has dealt with it otherwise): one kept until delivered is otherwise retried for
        ever. Whether it was; `retry_dead` can still put it back."""
        async with self._within(connection) as connection:
            result = await connection.execute(
                update(outbox)
                .where(outbox.c.id == message_id, self._kept_overdue())
                .values(state="dead", last_error="given_up")
            )
        return bool(result.rowcount == 1)

    async def overdue(self, limit: int = 100) -> list[dict[str, Any]]:
        """Pending messages kept until delivered past their deadline, oldest first."""
        return await self._summaries(self._kept_overdue(), limit)

    async def dead(self) -> list[dict[str, Any]]:
        """Dead-lettered messages, oldest first."""
        return await self._summaries(outbox.c.state == "dead", None)

    async def _summaries(self, which: Any, limit: int | None) -> list[dict[str, Any]]:
        """id, recipient, kind, attempts, last error and when written; never a body."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(
                    outbox.c.id,
                    outbox.c.recipient,
                    outbox.c.kind,
                    outbox.c.attempts,
                    outbox.c.last_error,
                    outbox.c.created_at,
                )
                .where(which)
                .order_by(outbox.c.created_at, outbox.c.id)
                .limit(limit)
            )
            return [{**row._mapping, "created_at": aware_utc(row.created_at)} for row in rows]

    async def counts(self) -> dict[str, int]:
        """Messages by state; and `overdue`, when there are any: those kept until delivered that
        are past their deadline (counted among `pending` too)."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(outbox.c.state, func.count()).group_by(outbox.c.state)
            )
            counted = {state: int(count) for state, count in rows.all()}
            overdue = await connection.scalar(select(func.count()).where(self._kept_overdue()))
        if overdue:
            counted["overdue"] = int(overdue)
        return counted


def _code(reason: Any) -> str:
    """A reason as stored and logged: an error code, or `bad_answer` (never a peer's own text)."""
    return reason if isinstance(reason, str) and _ERROR_CODE.fullmatch(reason) else "bad_answer"


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
