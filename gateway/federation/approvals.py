"""Disclosures held for this (holder) borough's lead CAF contact (DESIGN 3.4: `202 pending`).

    /federation/v1/disclosures   consent permits, and `disclosure_approval` says this one needs a
                                 lead contact: held here (sealed), the requester told `202 pending`
    decide(approve)              checked again now: the requester must still be an active member in
                                 the signed metadata, its attestation still in date, its approvers
                                 still listed and its key still valid, and consent must still permit
                                 over what the lead contact was shown (a withdrawal or an expired
                                 override counts; an override only if the hold relies on it); then
                                 exactly what an immediate disclosure does -> `approved`, or nothing
                                 disclosed -> `refused` (the code says which check failed)
    decide(reject)               nothing disclosed -> `rejected`
    expire()                     undecided when its attestation expired (at most 24 h): nothing
                                 disclosed -> `refused` (`attestation_invalid`), by the housekeeping
    either way                   a `disclosure_answer` message to the requester (outbox): the same
                                 JSON an immediate answer carries, or a refusal, with `approval_id`;
                                 nothing to a member no longer active (it could only dead-letter)

What a held disclosure records (practitioner, purpose, reason) is personal data: sealed at rest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from joserfc.jwk import OKPKey
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.members import MemberDirectory, MemberError
from schemas import Problem, Section

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..consent import ConsentDecision
from ..episodes import EpisodeStore
from ..errors import Conflict, Forbidden, NotFound, PeerUnavailable, SchemaViolation
from ..protection import KeyRing, ProtectionError, associated_data, open_, seal
from ..storage import aware_utc
from ..storage._tables import disclosure_approvals
from .attestation import MAX_LIFETIME
from .disclosing import Asked, audit_code, consent_now, disclose, refusal_code
from .outbox import Outbox

__all__ = ["ApprovalPolicy", "DisclosureApprovals", "PendingDisclosure"]

log = logging.getLogger("cafx.approvals")

ApprovalPolicy = Literal["never", "overrides", "always"]
HOLDER_REJECTED = "holder_rejected"  # the refusal code a requester receives after a rejection
# A lead contact approved, but the node refused to disclose at that moment (consent, the requester's
# membership or its attestation, the episode): nothing left, and `outcome` holds the refusal code.
REFUSED = "refused"
EXPIRY_ACTOR = "node:housekeeping"  # who refuses a hold whose attestation expired undecided


@dataclass(frozen=True)
class PendingDisclosure:
    """A held disclosure as a lead contact sees it (no assessment content)."""

    id: str
    requester: str  # GSS code of the home member
    practitioner_role: str
    agency_type: str
    purpose: str
    reason: str
    sections: list[str]  # what approval would disclose: the sections consent permitted on receipt
    episode_id: str
    received_at: datetime
    state: str  # pending | approved (disclosed) | refused (approved, not disclosed) | rejected
    override: bool  # relies on a public-interest override
    outcome: str | None = None  # after a decision: "disclosed", or the refusal code sent


def _bound(approval_id: str) -> bytes:
    return associated_data("disclosure_approvals", approval_id, "sealed")


class DisclosureApprovals:
    def __init__(
        self,
        *,
        me: str,
        policy: ApprovalPolicy,
        ring: KeyRing,
        audit: AuditLog,
        store: EpisodeStore,
        outbox: Outbox,
        signing_key: OKPKey,
        is_lead_contact: Callable[[str, str], bool],
        members: Callable[[], MemberDirectory],
    ) -> None:
        self.me, self.policy, self.ring, self.audit = me, policy, ring, audit
        self.store, self.outbox, self.key = store, outbox, signing_key
        self.is_lead_contact = is_lead_contact
        self.members = members  # the current signed metadata (raises while it is unusable)

    def needed(self, decision: ConsentDecision) -> bool:
        """Does this permitted disclosure wait for a lead contact of this borough?"""
        return self.policy == "always" or (self.policy == "overrides" and decision.overridden)

    # --- storage -------------------------------------------------------------------------------

    def _sealed(self, approval_id: str, document: dict[str, Any]) -> dict[str, Any]:
        sealed = seal(json.dumps(document).encode(), self.ring, _bound(approval_id))
        return {"key_id": sealed.key_id, "sealed": sealed.to_bytes()}

    def _pending(self, row: Any) -> tuple[PendingDisclosure, dict[str, Any]]:
        document = json.loads(open_(row.sealed, self.ring, _bound(row.id)))
        asked = document["asked"]
        view = PendingDisclosure(
            id=row.id,
            requester=row.requester,
            practitioner_role=asked["practitioner_role"],
            agency_type=asked["agency_type"],
            purpose=asked["purpose"],
            reason=asked["reason"],
            sections=list(document["sections"]),
            episode_id=asked["episode_id"],
            received_at=aware_utc(row.received_at),
            state=row.state,
            override=row.override,
            outcome=row.outcome,
        )
        return view, document

    async def _row(self, connection: AsyncConnection, approval_id: str) -> Any:
        try:  # the id the node gave it; anything else (a NUL, say) is not looked for
            uuid.UUID(approval_id)
        except ValueError:
            raise NotFound("no such disclosure approval") from None
        row = (
            await connection.execute(
                select(disclosure_approvals).where(disclosure_approvals.c.id == approval_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no such disclosure approval")
        return row

    async def get(self, approval_id: str) -> PendingDisclosure:
        async with self.audit.engine.connect() as connection:
            return self._pending(await self._row(connection, approval_id))[0]

    async def waiting(self, connection: AsyncConnection | None = None) -> list[PendingDisclosure]:
        """Held disclosures a lead contact of this borough must decide, oldest first; with a
        `connection`, read in it (the caller's audit transaction)."""
        if connection is None:
            async with self.audit.engine.connect() as reading:
                return await self.waiting(reading)
        rows = await connection.execute(
            select(disclosure_approvals)
            .where(disclosure_approvals.c.state == "pending")
            .order_by(disclosure_approvals.c.received_at, disclosure_approvals.c.id)
        )
        return [view for view, _ in self._opened(rows.all())]

    def _opened(self, rows: Sequence[Any]) -> Iterator[tuple[PendingDisclosure, dict[str, Any]]]:
        """Each held row as `_pending` reads it. One that does not open (sealed under a key this
        node does not have yet, or damaged) is logged, its id and error type only, and passed
        over: it must not stop the queue or the housekeeping for every other."""
        for row in rows:
            try:
                view, document = self._pending(row)
                Asked.from_json(document["asked"])
            except (ProtectionError, ValueError, KeyError, TypeError) as exc:
                log.error(
                    "held disclosure not opened",
                    extra={"approval": row.id, "error": type(exc).__name__},
                )
                continue
            yield view, document

    # --- the workflow ----------------------------------------------------------------------------

    async def hold(
        self,
        connection: AsyncConnection,
        asked: Asked,
        decision: ConsentDecision,
        *,
        actor: str,
        request_id: str | None,
    ) -> str:
        """Keep a permitted disclosure for approval, in the caller's (audit) transaction."""
        approval_id = str(uuid.uuid4())
        document = {
            "asked": asked.as_json(),
            "sections": sorted(s.value for s in decision.permitted_sections),
        }
        await connection.execute(
            insert(disclosure_approvals).values(
                id=approval_id,
                requester=asked.requester,
                state="pending",
                override=decision.overridden,
                received_at=dt.datetime.now(dt.UTC),
                **self._sealed(approval_id, document),
            )
        )
        await self.audit.append(
            connection,
            AuditDraft(
                actor=actor,
                action="disclosure_approval.hold",
                outcome=Outcome.SUCCESS,
                subject=asked.episode_id,
                request_id=request_id,
                details={
                    "approval": approval_id,
                    "rule": decision.rule.value,
                    "override": decision.overridden,
                    "practitioner": audit_code(asked.practitioner_id),
                },
            ),
        )
        return approval_id

    async def decide(
        self,
        approval_id: str,
        *,
        lead_contact_id: str,
        decision: Literal["approve", "reject"],
        note: str | None = None,
        request_id: str | None = None,
        now: datetime | None = None,
        via: str | None = None,
    ) -> PendingDisclosure:
        """A lead contact of this borough approves or rejects; the requester is told either way,
        while it is still an active member. `now` is the moment of the decision (tests pass a
        later one to see an attestation expire). `via` says who passed the decision on, for the
        audit log: `client:<id>` (a borough system, which asserts the lead contact) or
        `console:<id>` (the lead contact signed in). A rejection gives its reason (`note`), as
        `practitioner.Decision`, which the API and the console read, requires."""
        if decision == "reject" and not (note or "").strip():
            raise SchemaViolation(
                "a rejection says why",
                problems=[Problem(("note",), "decision.note_required", "a rejection says why")],
            )
        passed_on = None if via is None else audit_code(via)
        try:
            listed = self.is_lead_contact(self.me, lead_contact_id)
        except PeerUnavailable as unusable:  # no metadata in force: nobody can be checked
            await self._refused_unlisted(
                approval_id, decision, unusable.wire_code, request_id, passed_on
            )
            raise
        if not listed:
            await self._refused_unlisted(
                approval_id, decision, "not_lead_contact", request_id, passed_on
            )
            raise Forbidden(
                "only a listed lead CAF contact of this borough can decide", code="not_lead_contact"
            )
        actor = f"lead:{lead_contact_id}"
        try:
            return await self._decide(
                approval_id, lead_contact_id, decision, note, request_id, now, passed_on
            )
        except (Conflict, NotFound) as refused:  # decided already, or no such hold
            await self.audit.record(
                AuditDraft(
                    actor=actor,
                    action="disclosure_approval.decide",
                    outcome=Outcome.REFUSED,
                    subject=audit_code(approval_id),
                    reason=refused.wire_code,
                    request_id=request_id,
                    details={"decision": decision, "via": passed_on},
                )
            )
            raise

    async def _refused_unlisted(
        self,
        approval_id: str,
        decision: str,
        reason: str,
        request_id: str | None,
        passed_on: str | None,
    ) -> None:
        """A decision refused before the deciding id was known to be a lead contact's: recorded
        without that id, which could be anything."""
        await self.audit.record(
            AuditDraft(
                actor="lead:unlisted",
                action="disclosure_approval.decide",
                outcome=Outcome.REFUSED,
                subject=audit_code(approval_id),
                reason=reason,
                request_id=request_id,
                details={"decision": decision, "via": passed_on},
            )
        )

    async def _decide(
        self,
        approval_id: str,
        lead_contact_id: str,
        decision: Literal["approve", "reject"],
        note: str | None,
        request_id: str | None,
        now: datetime | None,
        passed_on: str | None,
    ) -> PendingDisclosure:
        actor = f"lead:{lead_contact_id}"
        moment = now or dt.datetime.now(dt.UTC)
        async with self.audit.transaction() as connection:
            row = await self._row(connection, approval_id)
            if row.state != "pending":
                raise Conflict(f"the disclosure was already {row.state}", code="already_decided")
            view, document = self._pending(row)
            asked = Asked.from_json(document["asked"])
            standing = self._standing(asked.requester)
            if decision == "approve":
                answer = await self._approve(
                    connection, view, asked, document, standing, moment, lead_contact_id, request_id
                )
                outcome = str(answer.get("outcome", answer.get("error")))
                state = "approved" if outcome == "disclosed" else REFUSED
            else:
                outcome, state = HOLDER_REJECTED, "rejected"
                answer = {
                    "error": HOLDER_REJECTED,
                    "message": "the holder's lead CAF contact did not approve this disclosure",
                }
            document["decision"] = {"by": lead_contact_id, "note": note, "at": moment.isoformat()}
            changed = await connection.execute(
                update(disclosure_approvals)
                .where(
                    disclosure_approvals.c.id == approval_id,
                    disclosure_approvals.c.state == "pending",
                )
                .values(
                    state=state,
                    decided_by=lead_contact_id,
                    decided_at=moment,
                    outcome=outcome[:64],
                    **self._sealed(approval_id, document),
                )
            )
            if changed.rowcount != 1:  # another replica decided first: roll everything back
                raise Conflict("the disclosure was already decided", code="already_decided")
            told = await self._tell(connection, asked, approval_id, answer, standing)
            await self.audit.append(
                connection,
                AuditDraft(
                    actor=actor,
                    action="disclosure_approval.decide",
                    outcome=Outcome.SUCCESS if outcome == "disclosed" else Outcome.REFUSED,
                    subject=approval_id,
                    reason=None if outcome == "disclosed" else outcome,
                    request_id=request_id,
                    details={
                        "decision": decision,
                        "state": state,
                        "requester": asked.requester,
                        "told": told,
                        "via": passed_on,
                    },
                ),
            )
        return dataclasses.replace(view, state=state, outcome=outcome)

    async def expire(self, now: datetime | None = None) -> list[str]:
        """Refuse the holds whose attestation has expired undecided (no approval could release
        them any more): `refused` with `attestation_invalid`, and the requester told, so neither
        this borough's queue nor the request waits for ever. Their ids. Run with the housekeeping."""
        moment = now or dt.datetime.now(dt.UTC)
        expired = []
        async with self.audit.transaction() as connection:
            rows = await connection.execute(
                select(disclosure_approvals).where(disclosure_approvals.c.state == "pending")
            )
            for view, document in self._opened(rows.all()):
                asked = Asked.from_json(document["asked"])
                if moment < (asked.attested_until or view.received_at + MAX_LIFETIME):
                    continue
                changed = await connection.execute(
                    update(disclosure_approvals)
                    .where(
                        disclosure_approvals.c.id == view.id,
                        disclosure_approvals.c.state == "pending",
                    )
                    .values(state=REFUSED, decided_at=moment, outcome="attestation_invalid")
                )
                if changed.rowcount != 1:  # decided meanwhile (a lead contact, another replica)
                    continue
                answer = await self._refuse(
                    connection,
                    view.id,
                    asked,
                    "attestation_invalid",
                    "the attestation expired before the holder's lead CAF contact decided; ask again",
                    EXPIRY_ACTOR,
                    None,
                )
                standing = self._standing(asked.requester)
                told = await self._tell(connection, asked, view.id, answer, standing)
                await self.audit.append(
                    connection,
                    AuditDraft(
                        actor=EXPIRY_ACTOR,
                        action="disclosure_approval.expire",
                        outcome=Outcome.REFUSED,
                        subject=view.id,
                        reason="attestation_invalid",
                        details={"requester": asked.requester, "told": told},
                    ),
                )
                expired.append(view.id)
        return expired

    async def _tell(
        self,
        connection: AsyncConnection,
        asked: Asked,
        approval_id: str,
        answer: dict[str, Any],
        standing: MemberError | None,
    ) -> bool:
        """Send the requester the answer (`disclosure_answer`), in the caller's transaction, while
        it is an active member (`standing` None): a suspended or removed one is sent nothing, as a
        message to it could only dead-letter. Whether it was told."""
        if standing is not None:
            return False
        await self.outbox.enqueue(
            connection, asked.requester, "disclosure_answer", {**answer, "approval_id": approval_id}
        )
        return True

    def _standing(self, requester: str) -> MemberError | None:
        """None while the requester is an active member in the current signed metadata; else why
        not (`member_suspended`, `unknown_member`). Unusable metadata raises: nothing is decided."""
        try:
            self.members().active(requester)
        except MemberError as error:
            return error
        return None

    async def _approve(
        self,
        connection: AsyncConnection,
        view: PendingDisclosure,
        asked: Asked,
        document: dict[str, Any],
        standing: MemberError | None,
        now: datetime,
        lead_contact_id: str,
        request_id: str | None,
    ) -> dict[str, Any]:
        """Check the requester and decide consent again now, over the sections the lead contact
        saw; disclose, or refuse with a stable code (audited as a refused disclosure)."""
        actor = f"lead:{lead_contact_id}"
        if standing is not None:
            return await self._refuse(
                connection,
                view.id,
                asked,
                standing.code,
                "the requesting member is no longer active in the federation",
                actor,
                request_id,
            )
        # An attestation lives at most 24 hours from its issue, so a hold recorded without its
        # `exp` is bounded by its arrival plus that.
        if now >= (asked.attested_until or view.received_at + MAX_LIFETIME):
            return await self._refuse(
                connection,
                view.id,
                asked,
                "attestation_invalid",
                "the attestation expired before the holder's lead CAF contact approved; ask again",
                actor,
                request_id,
            )
        stale = self._attested_stale(asked, view.override, now)
        if stale is not None:
            code, message = stale
            return await self._refuse(connection, view.id, asked, code, message, actor, request_id)
        # What the lead contact saw is what they approve: the sections they were shown, and an
        # override only if they were shown one. A consent withdrawn (or narrowed) meanwhile is not
        # made up for by an override nobody here looked at.
        approved = dataclasses.replace(
            asked,
            sections=tuple(map(Section, document["sections"])),
            override=asked.override if view.override else None,
        )
        try:
            stored, consent = await consent_now(connection, self.store, approved, now)
        except NotFound as missing:  # moved away or archived while held
            return await self._refuse(
                connection, view.id, asked, missing.wire_code, missing.message, actor, request_id
            )
        if not consent.permitted:
            return await self._refuse(
                connection,
                view.id,
                asked,
                refusal_code(consent),
                consent.reason,
                actor,
                request_id,
                rule=consent.rule.value,
                consent=audit_code(consent.consent_id) if consent.consent_id else None,
            )
        return await disclose(
            connection,
            me=self.me,
            key=self.key,
            store=self.store,
            audit=self.audit,
            stored=stored,
            decision=consent,
            asked=approved,
            actor=actor,
            request_id=request_id,
            holder_approved_by=lead_contact_id,
            approval=view.id,
        )

    def _attested_stale(
        self, asked: Asked, override_shown: bool, now: datetime
    ) -> tuple[str, str] | None:
        """Whether what this hold relies on still stands: the lead contacts who approved it at home
        (an override's second approver only when the hold relies on the override) still listed for
        the requester, and the key that signed the attestation still valid (a hold made before the
        key id was kept: not checked, and gone within the attestation's 24 hours). None, or
        (code, message)."""
        approvers = [asked.approved_by]
        if override_shown and asked.override is not None:
            approvers.append(asked.override.approved_by)
        if not all(self.is_lead_contact(asked.requester, who) for who in approvers):
            return (
                "not_lead_contact",
                "the requesting borough no longer lists the approver as a lead CAF contact",
            )
        if asked.key_id is not None:
            try:
                self.members().key_for(asked.requester, asked.key_id, now)
            except MemberError:
                return (
                    "attestation_invalid",
                    "the key that signed the attestation is no longer valid; ask again",
                )
        return None

    async def _refuse(
        self,
        connection: AsyncConnection,
        approval_id: str,
        asked: Asked,
        code: str,
        message: str,
        actor: str,
        request_id: str | None,
        **details: Any,
    ) -> dict[str, Any]:
        """Audit a disclosure refused at approval time; the refusal the requester would receive."""
        await self.audit.append(
            connection,
            AuditDraft(
                actor=actor,
                action="federation.disclosure",
                outcome=Outcome.REFUSED,
                subject=asked.episode_id,
                reason=code,
                request_id=request_id,
                details={
                    **details,
                    "approval": approval_id,
                    "practitioner": audit_code(asked.practitioner_id),
                },
            ),
        )
        return {"error": code, "message": message}
