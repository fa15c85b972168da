"""The transfer workflow: offer, accept, commit, and the closing and escalation of offers
(`__init__` tells the whole protocol)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeGuard

from joserfc.jwk import OKPKey
from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.members import MemberDirectory
from schemas import Episode, EpisodeState, Practitioner, london_today

from ...audit import AuditDraft, Outcome
from ...audit_log import AuditLog
from ...episodes import EpisodeStore
from ...errors import Conflict, NotFound, PayloadTooLarge, SchemaViolation
from ...protection import KeyRing, seal
from ...storage import aware_utc
from ...storage._tables import register, transfers
from ..attestation import KeyLookup
from ..custody import custody_chain, moved_on_to, sign_step, steps_for
from ..outbox import Message, Outbox
from . import _terms
from ._records import TransferRecords
from ._terms import (
    _CLOSING,
    CLOSING,
    COMMIT_REFUSED,
    MOVABLE,
    OPEN_STATES,
    REFUSED,
    RELEASE,
    TOO_LARGE,
    Closed,
    Direction,
    ReleasedTooEarly,
    _bound,
    _consent_refusal,
    _is_uuid,
    _kept,
    _reason_code,
    _size,
    _state_before,
    _steps,
    _transfer_consent,
    answer_due_by,
)

log = logging.getLogger("cafx.federation.transfer")

__all__ = ["TransferWorkflow"]


# What each message must carry; the rest of its shape is checked where it is used.
_NEEDS = {
    "transfer_offer": ("offer_id", "episode_ref"),
    "transfer_accept": ("offer_id", "lead_professional"),
    "transfer_commit": ("offer_id", "episode"),
    **dict.fromkeys(_CLOSING, ("offer_id",)),
}


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
        members: Callable[[], MemberDirectory] | None = None,
    ) -> None:
        self.me, self.store, self.outbox, self.ring = me, store, outbox, ring
        self.audit = audit
        self.signing_key, self.key_for = signing_key, key_for  # custody steps: ours, and others'
        self.answer_working_days = answer_working_days
        self.members = members  # the signed metadata: whose lead contact accepted an offer
        # Both registers, and the team told; `members` (the signed metadata) so that the team is
        # told only at members' nodes.
        self.records = TransferRecords(
            me, store, outbox, signing_key=signing_key, key_for=key_for, members=members
        )

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

    async def offer(
        self, connection: AsyncConnection, episode_id: str, to: str, lead_contact: str
    ) -> str:
        """Offer the episode to `to`, for our lead contact `lead_contact`; the offer's id. Refused
        (`ConsentNotGiven`) unless consent lets the whole episode go there now."""
        stored = await self.store.get(connection, episode_id, for_update=True)
        if stored.episode.state in (EpisodeState.TRANSFERRED, EpisodeState.ARCHIVED):
            raise Conflict(f"a {stored.episode.state.value} episode cannot be transferred")
        if to == self.me:
            raise Conflict("an episode cannot be transferred to its own authority")
        refusal = _consent_refusal(_transfer_consent(stored.episode, to, self._name_of(to)))
        if refusal is not None:
            raise refusal
        if stored.episode.state not in MOVABLE:
            # A closed one stays with its holder, to be archived and purged there; a disclosure
            # shares it.
            raise Conflict("a closed episode is not transferred: it stays with its holder")
        pending = await connection.scalar(
            select(transfers.c.id).where(
                transfers.c.episode_id == episode_id,
                transfers.c.direction == "out",
                transfers.c.state.in_(OPEN_STATES),
            )
        )
        if pending is not None:
            raise Conflict("the episode is already offered to an authority")
        if _size(stored.episode) > _terms.MAX_EPISODE_BYTES:
            raise PayloadTooLarge(
                f"the episode is over {_terms.MAX_EPISODE_BYTES} bytes, more than a transfer carries"
            )
        offer_id = str(uuid.uuid4())
        await self._add(connection, offer_id, "out", episode_id, to, "offered")
        await self._keep(connection, offer_id, "out", {"lead_contact": lead_contact})
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

    async def accept(
        self,
        connection: AsyncConnection,
        offer_id: str,
        lead: Practitioner,
        lead_contact: str | None = None,
    ) -> str:
        """Accept an offer made to us, for our lead contact `lead_contact` (the register's, on
        both sides), naming the new lead professional; the episode's id."""
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
        lead_professional = lead.model_dump(mode="json")
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "in")
            .values(
                state="accepted",
                updated_at=dt.datetime.now(dt.UTC),
                escalated_at=None,  # the episode's own due date runs from now
            )
        )
        await self._keep(
            connection,
            offer_id,
            "in",
            {"lead_professional": lead_professional, "lead_contact": lead_contact},
        )
        await self.outbox.enqueue(
            connection,
            row.counterpart,
            "transfer_accept",
            {
                "offer_id": offer_id,
                "lead_professional": lead_professional,
                "lead_contact_id": lead_contact,  # who took it: the register's on both sides
            },
        )
        return str(row.episode_id)

    async def episode_of(
        self, connection: AsyncConnection, offer_id: str, direction: Direction
    ) -> str | None:
        """The episode an offer is for, if it is one of ours (to audit a refused call on it)."""
        if not _is_uuid(offer_id):
            return None
        found = await connection.scalar(
            select(transfers.c.episode_id).where(
                transfers.c.id == offer_id, transfers.c.direction == direction
            )
        )
        return None if found is None else str(found)

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

    async def _keep(
        self, connection: AsyncConnection, offer_id: str, direction: str, kept: dict[str, Any]
    ) -> None:
        """Seal `kept` into the row (`_kept` reads it back)."""
        sealed = seal(json.dumps(kept).encode(), self.ring, _bound(offer_id, direction))
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == direction)
            .values(key_id=sealed.key_id, sealed=sealed.to_bytes())
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
        if kind == "transfer_decline" and reason == COMMIT_REFUSED and row.state == "committed":
            await self._take_back(connection, sender, row)
            return
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

    async def _take_back(self, connection: AsyncConnection, sender: str, row: Any) -> None:
        """The receiver refused our commit: our copy, read-only since, takes the episode again in
        the state it had (its lead professional never changed), so it is not left with nobody.
        Only while this commit is the latest move of our copy: one that came back and moved on
        since is not ours to reopen."""
        kept = _kept(row, self.ring)
        stored = await self.store.get(connection, row.episode_id, for_update=True)
        latest = await self._last_move(connection, row.episode_id, "out")
        if (
            stored.episode.state != EpisodeState.TRANSFERRED
            or latest is None
            or latest.id != row.id
        ):
            await self._audit(
                connection,
                f"member:{sender}",
                "transfer.take_back",
                row.episode_id,
                "transfer.moved_since",
                Outcome.REFUSED,
                offer=row.id,
            )
            return
        before = EpisodeState(kept.get("state_before", _state_before(stored.episode).value))
        await self.store.replace(
            connection, stored, stored.episode.model_copy(update={"state": before})
        )
        # The receiver holds nothing of it: our register row stays (the episode was sent there)
        # and is marked returned, so no later withdrawal goes to a member that holds nothing.
        if isinstance(kept.get("register"), str):
            await connection.execute(
                update(register)
                .where(register.c.id == kept["register"])
                .values(returned_at=dt.datetime.now(dt.UTC))
            )
        await self._mark(connection, row.id, "out", "declined", COMMIT_REFUSED)
        await self._audit(
            connection,
            f"member:{sender}",
            "transfer.take_back",
            row.episode_id,
            COMMIT_REFUSED,
            offer=row.id,
            state=before.value,
        )

    async def apply(self, connection: AsyncConnection, sender: str, message: Message) -> None:
        """Apply a transfer message (inside the inbox transaction)."""
        body = message.body
        missing = [key for key in _NEEDS.get(message.kind, ()) if key not in body]
        if missing:  # refused alone, with a code, rather than failing as internal_error
            raise SchemaViolation(f"a {message.kind} message needs {missing[0]}")
        for key in ("offer_id", "episode_ref"):
            # Ids a peer chose are stored, listed and put in console addresses: a UUID as
            # written here, or nothing (`../../sign-out?` would make a Decline button sign out).
            if key in body and not _is_uuid(body[key]):
                raise SchemaViolation(f"{key} is not a UUID in its usual form")
        if message.kind == "transfer_offer":
            await self._offered(connection, sender, body)
        elif message.kind == "transfer_accept":
            await self._commit(connection, sender, body)
        elif message.kind == "transfer_commit":
            await self._receive(connection, sender, body)
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
        self, connection: AsyncConnection, sender: str, body: Mapping[str, Any]
    ) -> None:
        """The receiver accepted: give it the episode, unless the offer was closed meanwhile, the
        episode cannot go, or consent no longer lets it go there (then the offer is withdrawn and
        our copy stays ours, writable)."""
        offer_id, lead = str(body["offer_id"]), body["lead_professional"]
        row = (
            await connection.execute(
                select(transfers).where(
                    transfers.c.id == offer_id,
                    transfers.c.direction == "out",
                    transfers.c.counterpart == sender,
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no offer to this member")
        if row.state in _CLOSING.values():
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
            await self._refused_commit(connection, sender, row, f"transfer.{row.state}")
            return
        if row.state != "offered":  # committed already: only a faulty peer accepts twice
            await self._refused_commit(connection, sender, row, f"transfer.{row.state}")
            return
        stored = await self.store.get(connection, row.episode_id, for_update=True)
        if stored.episode.state not in MOVABLE:  # closed (or moved) since the offer
            reason = f"transfer.episode_{stored.episode.state.value}"
            await self._withdraw(connection, sender, row, reason)
            return
        taken_by = body.get("lead_contact_id")
        if not self._lead_contact_of(taken_by, sender):  # recorded in both registers
            await self._withdraw(connection, sender, row, "transfer.not_lead_contact")
            return
        document = stored.episode.model_dump(mode="json")
        try:
            document.update(
                home_authority=sender,
                lead_professional=Practitioner.model_validate(lead).model_dump(mode="json"),
            )
            moved = Episode.model_validate(document)
        except ValidationError:  # a receiver on another release: nothing moves, it is told
            await self._withdraw(connection, sender, row, "transfer.lead_invalid")
            return
        if _size(moved) > _terms.MAX_EPISODE_BYTES:  # it grew since the offer
            # Withdrawn, not committed: the episode stays ours, writable, and the receiver's
            # acceptance is closed by the withdrawal (as when the two cross).
            await self._withdraw(connection, sender, row, TOO_LARGE)
            return
        # Consent is decided again now: a withdrawal or an exclusion since the offer stops it.
        decision = _transfer_consent(stored.episode, sender, self._name_of(sender))
        refusal = _consent_refusal(decision)
        if refusal is not None:
            await self._withdraw(connection, sender, row, refusal.wire_code, rule=refusal.rule)
            return
        now = dt.datetime.now(dt.UTC)
        step = sign_step(
            self.signing_key,
            episode_ref=row.episode_id,
            sender=self.me,
            receiver=sender,
            offer_id=offer_id,
            committed_at=now,
        )
        custody = custody_chain([*await self._custody(connection, row.episode_id), step])
        kept = _kept(row, self.ring)
        shared = await self.records.sent(
            connection,
            row,
            decision,
            taken_by=taken_by,
            offered_by=kept.get("lead_contact"),
            at=now,
        )
        await self.store.replace(
            connection,
            stored,
            stored.episode.model_copy(update={"state": EpisodeState.TRANSFERRED}),
        )
        await self._mark(connection, offer_id, "out", "committed")
        # Kept so that a commit the receiver refuses gives our copy its state back.
        before = stored.episode.state.value
        await self._keep(
            connection,
            offer_id,
            "out",
            {**kept, "state_before": before, "register": shared["register_id"]},
        )
        replaced = stored.episode.lead_professional
        await self.outbox.enqueue(
            connection,
            sender,
            "transfer_commit",
            {
                "offer_id": offer_id,
                "episode": moved.model_dump(mode="json"),
                "custody": custody,
                "register": shared,
                # Where the lead professional it replaces works: the new holder tells it too.
                "replaced_authority": replaced.authority if replaced else None,
            },
        )
        await self._audit(
            connection,
            f"member:{sender}",
            "transfer.commit",
            row.episode_id,
            offer=offer_id,
            rule=decision.rule.value,
            register=shared["register_id"],
        )

    def _name_of(self, member: str) -> str | None:
        """The member's name in the signed metadata (consent decides a transfer by it)."""
        found = self.members().member(member) if self.members is not None else None
        return found.name if found is not None else None

    def _lead_contact_of(self, contact_id: object, member: str) -> TypeGuard[str]:
        """Whether `contact_id` is a lead contact the signed metadata lists for `member`."""
        return (
            isinstance(contact_id, str)
            and self.members is not None
            and self.members().is_lead_contact(member, contact_id)
        )

    async def _refused_commit(
        self, connection: AsyncConnection, sender: str, row: Any, reason: str, **details: str
    ) -> None:
        await self._audit(
            connection,
            f"member:{sender}",
            "transfer.commit",
            row.episode_id,
            reason,
            Outcome.REFUSED,
            offer=row.id,
            **details,
        )

    async def _withdraw(
        self, connection: AsyncConnection, sender: str, row: Any, reason: str, **details: str
    ) -> None:
        """Not committed after all: the offer is withdrawn (the receiver's acceptance closes, as
        when the two cross) and the episode stays ours."""
        await self._mark(connection, row.id, "out", "withdrawn", reason)
        await self.outbox.enqueue(
            connection, sender, "transfer_withdraw", {"offer_id": row.id, "reason": reason}
        )
        await self._refused_commit(connection, sender, row, reason, **details)

    async def _receive(
        self, connection: AsyncConnection, sender: str, body: Mapping[str, Any]
    ) -> None:
        """The holder committed an offer we accepted: the episode is ours. What was judged when
        we accepted (who may send it, its custody steps) is not judged again: the holder has
        given its copy up, and a member suspended meanwhile must not leave the episode with
        nobody. A commit that cannot be taken (it is not what we accepted, or the episode has come
        from elsewhere meanwhile) is refused for good: audited with the reason, and the holder
        told (`COMMIT_REFUSED`) so that it takes its copy back."""
        offer_id = str(body["offer_id"])
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
        # the episode has come from elsewhere meanwhile, or another offer of it is accepted).
        if row is None or row.state not in ("accepted", RELEASE[1]):
            raise Conflict("no accepted offer from this member")
        if row.sealed is None:  # released 7 years ago: retention cleared what we accepted
            await self._refuse_commit(connection, sender, row, "transfer.released_long_ago")
            return
        kept = _kept(row, self.ring)
        try:
            received = Episode.model_validate(body["episode"])
        except ValidationError:  # a holder on another release: it must take its copy back
            await self._refuse_commit(connection, sender, row, "transfer.episode_invalid")
            return
        refusal = await self._why_not_commit(connection, row, received, kept["lead_professional"])
        if refusal is not None:
            await self._refuse_commit(connection, sender, row, refusal)
            return
        ours = received.model_copy(update={"home_authority": self.me})
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
        custody = custody_chain(body.get("custody"))
        await connection.execute(
            update(transfers)
            .where(transfers.c.id == offer_id, transfers.c.direction == "in")
            .values(custody=json.dumps(custody))
        )
        register_id, receipt = await self.records.received(
            connection, sender, row, ours, kept.get("lead_contact"), body.get("register")
        )
        told, left_out = await self.records.tell_the_team(
            connection, ours, custody, body.get("replaced_authority")
        )
        await self._audit(
            connection,
            f"member:{sender}",
            "transfer.receive",
            row.episode_id,
            None,
            Outcome.SUCCESS,
            offer=offer_id,
            register=register_id,
            receipt=receipt,
            told=str(told),
            left_out=str(left_out),  # authorities outside the federation, not told
            **released,
        )

    async def _why_not_commit(
        self, connection: AsyncConnection, row: Any, received: Episode, accepted: object
    ) -> str | None:
        """Why a commit of an offer we accepted (or released) cannot be taken, or None."""
        if str(received.episode_id) != row.episode_id:
            return "transfer.not_the_episode_offered"
        if received.state not in MOVABLE:  # it would be read-only here too: held by nobody
            return "transfer.episode_state"
        if (
            received.lead_professional is None
            or received.lead_professional.model_dump(mode="json") != accepted
        ):
            return "transfer.lead_mismatch"
        try:
            held = await self.store.get(connection, row.episode_id)
        except NotFound:
            held = None
        if held is not None and held.episode.state != EpisodeState.TRANSFERRED:
            return "transfer.already_held"
        if row.state == RELEASE[1]:
            # Released for another offer of the episode, now accepted: that one is to come.
            other = await connection.scalar(
                select(transfers.c.id).where(
                    transfers.c.episode_id == row.episode_id,
                    transfers.c.direction == "in",
                    transfers.c.state == "accepted",
                    transfers.c.id != row.id,
                )
            )
            if other is not None:
                return "transfer.another_accepted"
        return None

    async def _refuse_commit(
        self, connection: AsyncConnection, sender: str, row: Any, reason: str
    ) -> None:
        """Refuse a commit for good (it is acknowledged, not retried): an accepted offer is
        declined with the reason, so another can be accepted; the holder is told only
        `COMMIT_REFUSED` and takes its copy back."""
        if row.state == "accepted":
            await self._mark(connection, row.id, "in", "declined", reason)
        await self.outbox.enqueue(
            connection, sender, "transfer_decline", {"offer_id": row.id, "reason": COMMIT_REFUSED}
        )
        await self._audit(
            connection,
            f"member:{sender}",
            "transfer.receive",
            row.episode_id,
            reason,
            Outcome.REFUSED,
            offer=row.id,
        )
