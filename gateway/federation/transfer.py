"""Transfer when a child moves authority (DESIGN 3.6): offer -> accept -> commit, as outbox messages.

    holder   POST /api/v1/episodes/{id}/transfer        offer (transfers: out, offered)
    receiver transfer_offer message                      transfers: in, offered
    receiver POST /api/v1/transfers/{offer}/accept       names the new lead professional
    holder   transfer_accept message                     copies the whole episode with the new lead
                                                         professional, marks its own copy
                                                         `transferred` (read-only), sends the commit
    receiver transfer_commit message                     stores the episode as its own, open

The episode is never without a lead professional: the holder's copy keeps its own until it is
read-only, and the receiver's copy arrives with the accepted one.

An episode has at most one open offer, and only an episode still held here is committed: it cannot
move to two authorities. Each step is audited in the transaction that makes it (`transfer.offer`,
`transfer.accept`, `transfer.commit`, `transfer.receive`). A child who moves back receives the
episode over its old read-only copy, and only from the member it was moved to or one the signed
custody steps lead to from there (`custody.py`: A -> B -> C -> A); a member that never held it
cannot overwrite it. An offer for an episode the receiver cannot take (it holds it, or moved it to
a member from which the offer's custody steps do not lead to the sender) is declined at once: the
reason is kept and audited here, the sender is told only `transfer.refused`. Of several offers of
one episode, only one can be accepted.

An offer that is not going to be taken is closed, so that the episode can be offered again: its
holder withdraws it while it is unanswered (`transfer_withdraw`), or the receiver declines it before
accepting (`transfer_decline`), each with a reason code; both sides then list it `withdrawn` or
`declined`. An accepted offer whose episode has not come by its due date (escalated) can be
released by the receiver: it no longer stops another offer of the episode being accepted (the
genuine one, when a faulty member's was accepted), its holder is sent `transfer_decline`, and a
commit already on its way still lands while the receiver holds no copy of the episode, so a holder
that gave its copy up never leaves the episode with nobody. An acceptance that crosses a withdrawal
in flight is applied as nothing, and the withdrawal is sent again to close the receiver's side too.

Unanswered offers escalate (DESIGN 3.6): an offer not committed after `answer_working_days` working
days (England and Wales bank holidays, London dates) is marked `escalated_at` on both members, each on
its own clock, audited (`transfer.escalate`) and logged as an alert (ids only) for the lead contacts,
and listed with its `due_by` date. It stays open: escalation asks people to act, it decides nothing.
On the receiver that includes an accepted offer whose episode never arrived, which it can then
release (above).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Collection, Mapping
from functools import cache
from typing import Any, Literal, NamedTuple

import holidays
from joserfc.jwk import OKPKey
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import LONDON, Episode, EpisodeState, Practitioner, london_today

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..episodes import EpisodeStore
from ..errors import Conflict, NotFound, PayloadTooLarge, SchemaViolation
from ..protection import KeyRing, associated_data, open_, seal
from ..storage import aware_utc
from ..storage._tables import transfers
from .attestation import KeyLookup
from .custody import custody_chain, moved_on_to, sign_step, steps_for
from .outbox import Message, Outbox

__all__ = [
    "CLOSING",
    "OPEN_STATES",
    "RELEASE",
    "STATES",
    "Closed",
    "ReleasedTooEarly",
    "TransferWorkflow",
    "answer_due_by",
]

log = logging.getLogger("cafx.federation.transfer")
Direction = Literal["in", "out"]


@cache
def _bank_holidays() -> holidays.HolidayBase:
    return holidays.country_holidays("GB", subdiv="ENG")  # England and Wales share bank holidays


def answer_due_by(offered_at: dt.datetime, working_days: int) -> dt.date:
    """The last London day an offer made at `offered_at` (UTC when naive, as SQLite returns it) may
    wait for its answer."""
    london = aware_utc(offered_at).astimezone(LONDON).date()
    return _bank_holidays().get_nth_working_day(london, working_days)


OPEN_STATES = ("offered", "accepted")  # not yet committed nor closed
# Closing an offer unmoved, by the side whose row it is (the holder's `out`, the receiver's `in`):
# the action (audited `transfer.<action>`, sent as `transfer_<action>`) and the state it leaves.
CLOSING: dict[str, tuple[str, str]] = {
    "out": ("withdraw", "withdrawn"),
    "in": ("decline", "declined"),
}
_CLOSING = {f"transfer_{action}": state for action, state in CLOSING.values()}  # by message kind
# Closing, by the receiver, an accepted offer whose episode never came (it sends `transfer_decline`).
RELEASE = ("release", "released")
STATES = (*OPEN_STATES, "committed", *(state for _, state in CLOSING.values()), RELEASE[1])


class Closed(NamedTuple):
    episode_id: str
    action: str  # withdraw | decline | release: audited `transfer.<action>`
    state: str  # what the offer is now


_REASON = re.compile(r"[a-z][a-z0-9_.]{0,63}")
REFUSED = "transfer.refused"  # what a sender is told of an offer declined at once
# The commit carries the whole episode in one message, which must fit a peer's request (4 MiB by
# default, with the envelope): one bigger would be refused at every attempt, after our copy had
# become read-only, and nobody would hold the episode.
MAX_EPISODE_BYTES = 3 * 1024 * 1024
TOO_LARGE = "transfer.episode_too_large"


def _is_uuid(value: object) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _size(episode: Episode) -> int:
    """Bytes on the wire (UTF-8, as the transport sends it), not characters."""
    return len(episode.model_dump_json().encode())


def _reason_code(value: object) -> str:
    """A peer's reason, kept only if it looks like a code (it is listed and audited)."""
    return value if isinstance(value, str) and _REASON.fullmatch(value) else "unspecified"


def _steps(stored: str | None) -> list[str]:
    """Custody steps as a `transfers.custody` column holds them."""
    return custody_chain(json.loads(stored)) if stored else []


def _bound(offer_id: str, direction: str) -> bytes:
    return associated_data("transfers", f"{offer_id}:{direction}", "sealed")


class ReleasedTooEarly(Conflict):
    """A release of an accepted offer before its due date, asked for as a decline."""

    refused_action = "transfer.release"


class TransferWorkflow:
    def __init__(
        self,
        me: str,
        store: EpisodeStore,
        outbox: Outbox,
        ring: KeyRing,
        audit: AuditLog,
        *,
        signing_key: OKPKey,
        key_for: KeyLookup,
        answer_working_days: int = 5,
    ) -> None:
        self.me, self.store, self.outbox, self.ring = me, store, outbox, ring
        self.audit = audit
        self.signing_key, self.key_for = signing_key, key_for  # custody steps: ours, and others'
        self.answer_working_days = answer_working_days

    async def _audit(
        self,
        connection: AsyncConnection,
        actor: str,
        action: str,
        episode: str,
        reason: str | None = None,
        outcome: Outcome = Outcome.SUCCESS,
        **details: str,
    ) -> None:
        await self.audit.append(
            connection,
            AuditDraft(
                actor=actor,
                action=action,
                outcome=outcome,
                subject=episode,
                reason=reason,
                details=details,
            ),
        )

    async def offer(self, connection: AsyncConnection, episode_id: str, to: str) -> str:
        stored = await self.store.get(connection, episode_id, for_update=True)
        if stored.episode.state in (EpisodeState.TRANSFERRED, EpisodeState.ARCHIVED):
            raise Conflict(f"a {stored.episode.state.value} episode cannot be transferred")
        if to == self.me:
            raise Conflict("an episode cannot be transferred to its own authority")
        pending = await connection.scalar(
            select(transfers.c.id).where(
                transfers.c.episode_id == episode_id,
                transfers.c.direction == "out",
                transfers.c.state.in_(OPEN_STATES),
            )
        )
        if pending is not None:
            raise Conflict("the episode is already offered to an authority")
        if _size(stored.episode) > MAX_EPISODE_BYTES:
            raise PayloadTooLarge(
                f"the episode is over {MAX_EPISODE_BYTES} bytes, more than a transfer carries"
            )
        offer_id = str(uuid.uuid4())
        await self._add(connection, offer_id, "out", episode_id, to, "offered")
        await self.outbox.enqueue(
            connection,
            to,
            "transfer_offer",
            {
                "offer_id": offer_id,
                "episode_ref": episode_id,
                "state": stored.episode.state.value,
                "local_ref": stored.episode.local_ref,
                "custody": steps_for(await self._custody(connection, episode_id), to, self.key_for),
            },
        )
        return offer_id

    async def _last_move(
        self, connection: AsyncConnection, episode_id: str, direction: Direction
    ) -> Any:
        """The latest committed transfer of the episode to us (`in`) or away (`out`), or None."""
        return (
            await connection.execute(
                select(transfers)
                .where(
                    transfers.c.episode_id == episode_id,
                    transfers.c.direction == direction,
                    transfers.c.state == "committed",
                )
                .order_by(transfers.c.updated_at.desc())
                .limit(1)
            )
        ).one_or_none()

    async def _custody(self, connection: AsyncConnection, episode_id: str) -> list[str]:
        """The custody steps our copy came with (none for an episode that started here)."""
        came = await self._last_move(connection, episode_id, "in")
        return _steps(came and came.custody)

    async def listed(
        self,
        connection: AsyncConnection,
        direction: Direction = "in",
        *,
        states: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Offers made to this member (`in`, "from") or by it (`out`, "to"), oldest first: those in
        `states` only, if given, and the newest `limit` of them, if given."""
        query = select(transfers).where(transfers.c.direction == direction)
        if states is not None:
            query = query.where(transfers.c.state.in_(states))
        rows = list(
            await connection.execute(
                query.order_by(transfers.c.created_at.desc(), transfers.c.id.desc()).limit(limit)
            )
        )
        rows.reverse()
        return [
            {
                "offer_id": r.id,
                "from" if direction == "in" else "to": r.counterpart,
                "episode_ref": r.episode_id,
                "state": r.state,
                "offered_at": aware_utc(r.created_at).isoformat(),
                "reason": r.reason,
                "due_by": self._due(r).isoformat(),
                "escalated_at": r.escalated_at and aware_utc(r.escalated_at).isoformat(),
            }
            for r in rows
            # One a member sent before its ids were checked (`apply`) is not listed: its id would
            # go into the console's addresses.
            if _is_uuid(r.id)
        ]

    def _due(self, row: Any) -> dt.date:
        """When an offer's answer is due; once accepted, when its episode is (a receiver's accepted
        row is last updated by its acceptance)."""
        since = row.updated_at if row.state == "accepted" else row.created_at
        return answer_due_by(since, self.answer_working_days)

    async def escalate(self, today: dt.date | None = None) -> list[str]:
        """Mark the offers still not committed after their due date; the ids marked now."""
        today = today or london_today()
        now = dt.datetime.now(dt.UTC)
        marked = []
        async with self.audit.transaction() as connection:
            rows = await connection.execute(
                select(transfers).where(
                    transfers.c.state.in_(OPEN_STATES), transfers.c.escalated_at.is_(None)
                )
            )
            for row in rows.all():
                due = self._due(row)
                if today <= due:
                    continue
                await connection.execute(
                    update(transfers)
                    .where(transfers.c.id == row.id, transfers.c.direction == row.direction)
                    .values(escalated_at=now)
                )
                details = {
                    "offer": row.id,
                    "direction": row.direction,
                    "counterpart": row.counterpart,
                    "due_by": due.isoformat(),
                }
                await self._audit(
                    connection,
                    "node",
                    "transfer.escalate",
                    row.episode_id,
                    "transfer.unanswered",
                    **details,
                )
                # The alert monitoring pages on, as for a dead letter: ids and codes only.
                log.error("transfer offer unanswered", extra=details)
                marked.append(row.id)
        return marked

    async def accept(self, connection: AsyncConnection, offer_id: str, lead: Practitioner) -> str:
        """Accept an offer made to us, naming the new lead professional; the episode's id."""
        row = (
            await connection.execute(
                select(transfers).where(transfers.c.id == offer_id, transfers.c.direction == "in")
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no such transfer offer")
        if row.state != "offered":
            raise Conflict(f"the offer is {row.state}")
        # Two members may offer the same episode (one of them wrongly): only one acceptance can
        # be committed here, so a second is refused now, before its holder gives its copy up.
        accepted = await connection.scalar(
            select(transfers.c.id).where(
                transfers.c.episode_id == row.episode_id,
                transfers.c.direction == "in",
                transfers.c.state == "accepted",
            )
        )
        if accepted is not None:
            raise Conflict("another offer of this episode is already accepted")
        refusal = await self._why_not_from(
            connection, row.counterpart, row.episode_id, _steps(row.custody)
        )
        if refusal is not None:
            raise Conflict(f"the episode cannot be taken from this member ({refusal})")
        sealed = seal(lead.model_dump_json().encode(), self.ring, _bound(offer_id, "in"))
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "in")
            .values(
                state="accepted",
                updated_at=dt.datetime.now(dt.UTC),
                escalated_at=None,  # the episode's own due date runs from now
                key_id=sealed.key_id,
                sealed=sealed.to_bytes(),
            )
        )
        await self.outbox.enqueue(
            connection,
            row.counterpart,
            "transfer_accept",
            {"offer_id": offer_id, "lead_professional": lead.model_dump(mode="json")},
        )
        return str(row.episode_id)

    async def close(
        self, connection: AsyncConnection, offer_id: str, direction: str, reason: str
    ) -> Closed:
        """Close an offer unmoved (`CLOSING`): the holder withdraws one it made (`out`), the
        receiver declines one made to it (`in`), while unanswered; or the receiver releases one it
        accepted whose episode is past due (`RELEASE`)."""
        action, state = CLOSING[direction]
        kind = (
            f"transfer_{action}"  # a release is sent as a decline: it closes the other side alike
        )
        row = (
            await connection.execute(
                select(transfers).where(
                    transfers.c.id == offer_id, transfers.c.direction == direction
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no such transfer offer")
        if direction == "in" and row.state == "accepted":
            if row.escalated_at is None:
                raise ReleasedTooEarly(
                    "the offer is accepted: it can be released once past its due date"
                )
            action, state = RELEASE
        elif row.state != "offered":
            raise Conflict(f"the offer is {row.state}")
        # Only from the state read: a commit applied meanwhile is not overwritten.
        if not await self._mark(
            connection, offer_id, direction, state, reason, only_from=row.state
        ):
            raise Conflict("the offer changed meanwhile")
        await self.outbox.enqueue(
            connection, row.counterpart, kind, {"offer_id": offer_id, "reason": reason}
        )
        return Closed(str(row.episode_id), action, state)

    async def _add(
        self,
        connection: AsyncConnection,
        offer_id: str,
        direction: str,
        episode_id: str,
        counterpart: str,
        state: str,
        reason: str | None = None,
        custody: list[str] | None = None,
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        await connection.execute(
            insert(transfers).values(
                id=offer_id,
                direction=direction,
                episode_id=episode_id,
                counterpart=counterpart,
                state=state,
                reason=reason,
                created_at=now,
                updated_at=now,
                custody=json.dumps(custody) if custody else None,
            )
        )

    async def _mark(
        self,
        connection: AsyncConnection,
        offer_id: str,
        direction: str,
        state: str,
        reason: str | None = None,
        only_from: str | None = None,
    ) -> bool:
        """Set the offer's state (with `only_from`: if it is still in that one); whether it was."""
        changed = update(transfers).where(
            transfers.c.id == offer_id, transfers.c.direction == direction
        )
        if only_from is not None:
            changed = changed.where(transfers.c.state == only_from)
        result = await connection.execute(
            changed.values(state=state, reason=reason, updated_at=dt.datetime.now(dt.UTC))
        )
        return bool(result.rowcount == 1)

    async def _closed_by_peer(
        self, connection: AsyncConnection, sender: str, kind: str, body: Mapping[str, Any]
    ) -> None:
        """The other side withdrew or declined: close ours (an offer already closed stays so)."""
        offer_id, reason = str(body["offer_id"]), _reason_code(body.get("reason"))
        direction = "in" if kind == "transfer_withdraw" else "out"
        row = (
            await connection.execute(
                select(transfers).where(
                    transfers.c.id == offer_id,
                    transfers.c.direction == direction,
                    transfers.c.counterpart == sender,
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no such offer from this member")
        # A withdrawal may find our side accepted (the acceptance crossed it); a decline finds
        # ours offered, or committed when it releases an acceptance we took meanwhile: a
        # committed offer is past closing.
        closable = ("offered", "accepted") if kind == "transfer_withdraw" else ("offered",)
        action = kind.replace("_", ".")  # transfer.withdraw | transfer.decline
        if row.state in _CLOSING.values():
            return
        if row.state not in closable:  # only a faulty peer sends it; retrying cannot help
            await self._audit(
                connection,
                f"member:{sender}",
                action,
                row.episode_id,
                f"transfer.{row.state}",
                Outcome.REFUSED,
                offer=offer_id,
            )
            return
        await self._mark(connection, offer_id, direction, _CLOSING[kind], reason)
        await self._audit(
            connection, f"member:{sender}", action, row.episode_id, reason, offer=offer_id
        )

    async def apply(self, connection: AsyncConnection, sender: str, message: Message) -> None:
        """Apply a transfer message (inside the inbox transaction)."""
        body = message.body
        for key in ("offer_id", "episode_ref"):
            # Ids a peer chose are stored, listed and put in console addresses: a UUID as
            # written here, or nothing (`../../sign-out?` would make a Decline button sign out).
            if key in body and not _is_uuid(body[key]):
                raise SchemaViolation(f"{key} is not a UUID in its usual form")
        if message.kind == "transfer_offer":
            await self._offered(connection, sender, body)
        elif message.kind == "transfer_accept":
            await self._commit(connection, sender, str(body["offer_id"]), body["lead_professional"])
        elif message.kind == "transfer_commit":
            await self._receive(
                connection, sender, str(body["offer_id"]), body["episode"], body.get("custody")
            )
        elif message.kind in _CLOSING:
            await self._closed_by_peer(connection, sender, message.kind, body)

    async def _offered(
        self, connection: AsyncConnection, sender: str, body: Mapping[str, Any]
    ) -> None:
        """List an offer made to us, or decline it at once if we could never take the episode."""
        offer_id, episode_id = str(body["offer_id"]), str(body["episode_ref"])
        custody = custody_chain(body.get("custody"))
        refusal = await self._why_not_from(connection, sender, episode_id, custody)
        state = "offered" if refusal is None else "declined"
        await self._add(connection, offer_id, "in", episode_id, sender, state, refusal, custody)
        if refusal is not None:
            # The sender learns only that it was refused: which reason (held here, moved on)
            # would tell any member where a child is, without an attested existence check.
            await self.outbox.enqueue(
                connection, sender, "transfer_decline", {"offer_id": offer_id, "reason": REFUSED}
            )
            await self._audit(
                connection,
                "node",
                "transfer.decline",
                episode_id,
                refusal,
                Outcome.REFUSED,
                offer=offer_id,
                counterpart=sender,
            )

    async def _why_not_from(
        self, connection: AsyncConnection, sender: str, episode_id: str, custody: list[str]
    ) -> str | None:
        """Why we cannot take `episode_id` from `sender` (a reason code), or None if we can: an
        episode we hold is ours already; one we moved away comes back only from the member we
        moved it to or one the `custody` steps the sender showed lead to from there, so a member
        that never held it cannot overwrite our read-only copy."""
        try:
            old = await self.store.get(connection, episode_id)
        except NotFound:
            return None
        if old.episode.state != EpisodeState.TRANSFERRED:
            return "transfer.already_held"
        moved = await self._last_move(connection, episode_id, "out")
        if moved is None:
            return "transfer.moved_elsewhere"
        walked = moved_on_to(
            custody,
            episode_ref=episode_id,
            first=moved.counterpart,
            since=aware_utc(moved.updated_at),
            key_for=self.key_for,
        )
        if walked.holder == sender:
            return None
        # A step that would have led on did not verify: for the operator, not a stray offer.
        return "transfer.custody_unverified" if walked.unverified else "transfer.moved_elsewhere"

    async def _commit(
        self, connection: AsyncConnection, sender: str, offer_id: str, lead: dict[str, Any]
    ) -> None:
        row = (
            await connection.execute(
                select(transfers).where(
                    transfers.c.id == offer_id,
                    transfers.c.direction == "out",
                    transfers.c.counterpart == sender,
                )
            )
        ).one_or_none()
        if row is not None and row.state in _CLOSING.values():
            # The acceptance crossed our withdrawal, or came after the receiver's own decline (a
            # release overtaking an acceptance that was held up): nothing moves, our copy stays
            # ours. A withdrawal is sent again (its first copy may have arrived before the offer,
            # or been dead-lettered), so the receiver's side closes too; a side closed ignores it.
            if row.state == "withdrawn":
                await self.outbox.enqueue(
                    connection,
                    sender,
                    "transfer_withdraw",
                    {"offer_id": offer_id, "reason": row.reason or "unspecified"},
                )
            await self._audit(
                connection,
                f"member:{sender}",
                "transfer.commit",
                row.episode_id,
                f"transfer.{row.state}",
                Outcome.REFUSED,
                offer=offer_id,
            )
            return
        if row is None or row.state != "offered":
            raise Conflict("no open offer to this member")
        stored = await self.store.get(connection, row.episode_id, for_update=True)
        if stored.episode.state in (EpisodeState.TRANSFERRED, EpisodeState.ARCHIVED):
            raise Conflict(
                f"the episode is {stored.episode.state.value}: it is no longer ours to move"
            )
        document = stored.episode.model_dump(mode="json")
        document.update(
            home_authority=sender,
            lead_professional=Practitioner.model_validate(lead).model_dump(mode="json"),
        )
        moved = Episode.model_validate(document)  # refuses an invalid lead professional
        if _size(moved) > MAX_EPISODE_BYTES:  # it grew since the offer
            # Withdrawn, not committed: the episode stays ours, writable, and the receiver's
            # acceptance is closed by the withdrawal (as when the two cross).
            await self._mark(connection, offer_id, "out", "withdrawn", TOO_LARGE)
            await self.outbox.enqueue(
                connection, sender, "transfer_withdraw", {"offer_id": offer_id, "reason": TOO_LARGE}
            )
            await self._audit(
                connection,
                f"member:{sender}",
                "transfer.commit",
                row.episode_id,
                TOO_LARGE,
                Outcome.REFUSED,
                offer=offer_id,
            )
            return
        step = sign_step(
            self.signing_key,
            episode_ref=row.episode_id,
            sender=self.me,
            receiver=sender,
            offer_id=offer_id,
            committed_at=dt.datetime.now(dt.UTC),
        )
        custody = custody_chain([*await self._custody(connection, row.episode_id), step])
        await self.store.replace(
            connection,
            stored,
            stored.episode.model_copy(update={"state": EpisodeState.TRANSFERRED}),
        )
        await self._mark(connection, offer_id, "out", "committed")
        await self.outbox.enqueue(
            connection,
            sender,
            "transfer_commit",
            {"offer_id": offer_id, "episode": moved.model_dump(mode="json"), "custody": custody},
        )
        await self._audit(
            connection, f"member:{sender}", "transfer.commit", row.episode_id, offer=offer_id
        )

    async def _receive(
        self,
        connection: AsyncConnection,
        sender: str,
        offer_id: str,
        episode: dict[str, Any],
        custody: object,
    ) -> None:
        row = (
            await connection.execute(
                select(transfers).where(
                    transfers.c.id == offer_id,
                    transfers.c.direction == "in",
                    transfers.c.counterpart == sender,
                )
            )
        ).one_or_none()
        # Released: the receiver stopped waiting, but takes a commit that was on its way (unless
        # the episode has come from elsewhere meanwhile: already held, below).
        if row is None or row.state not in ("accepted", RELEASE[1]) or row.sealed is None:
            raise Conflict("no accepted offer from this member")
        accepted = json.loads(open_(row.sealed, self.ring, _bound(offer_id, "in")))
        received = Episode.model_validate(episode)
        if str(received.episode_id) != row.episode_id:
            raise Conflict("the committed episode is not the one offered")
        if (
            received.lead_professional is None
            or received.lead_professional.model_dump(mode="json") != accepted
        ):
            raise Conflict("the committed episode does not carry the accepted lead professional")
        ours = received.model_copy(update={"home_authority": self.me})
        refusal = await self._why_not_from(  # again: it may have changed since the offer
            connection, sender, row.episode_id, _steps(row.custody)
        )
        if refusal is not None:
            raise Conflict(f"the episode cannot be taken from this member ({refusal})")
        try:  # the child moved back: our old copy, read-only since it left, takes the episode again
            old = await self.store.get(connection, row.episode_id, for_update=True)
        except NotFound:
            await self.store.add(connection, ours)
        else:
            await self.store.replace(connection, old, ours)
        released = {"after": RELEASE[1]} if row.state == RELEASE[1] else {}
        await self._mark(connection, offer_id, "in", "committed")
        # Kept as sent, verified only when walked: the steps vouch for our copy when the child
        # moves on and an earlier holder is offered the episode back.
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "in")
            .values(custody=json.dumps(custody_chain(custody)))
        )
        await self._audit(
            connection,
            f"member:{sender}",
            "transfer.receive",
            row.episode_id,
            None,
            Outcome.SUCCESS,
            offer=offer_id,
            **released,
        )
