"""A practitioner's cross-borough request, on their home node (DESIGN 3.3; protocol 003 §2-3).

    POST /api/v1/requests      awaiting_verification   (or approved at once: auto-approval by role)
    POST .../decision          a lead CAF contact of this borough approves or rejects
                               (an override needs a second, different lead contact: DESIGN 3.5)
    approved                   the node issues the CAF-Attestation and calls the target member
    awaiting_holder            the target's lead contact must approve first (`202 pending`); its
                               `disclosure_answer` message completes the request as below
    answered | refused | failed  the target's answer, its refusal code, or peer_unavailable
                               (`interrupted`: the node stopped while sending; see below)
    failed (override_expired)  still awaiting a lead contact when its override's time limit
                               passed: no approval can send it any more

The record (practitioner, the child's match keys, the answer) is personal data: sealed at rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from joserfc.jwk import OKPKey
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from directory.members import MemberError
from schemas import CONTROL_CHARACTERS, AgencyType, Problem, Section

from ..audit import AuditDraft, Outcome
from ..audit_log import AuditLog
from ..errors import (
    Conflict,
    Forbidden,
    GatewayError,
    NotFound,
    PeerUnavailable,
    SchemaViolation,
)
from ..protection import KeyRing, associated_data, has_letters, open_, seal
from ..storage import aware_utc, first_answer
from ..storage._tables import (
    idempotency_keys,
    overrides,
    practitioner_requests,
    received_copies,
    register,
)
from .attestation import (
    MAX_OVERRIDE,
    KeyLookup,
    LeadContactCheck,
    OverrideGrant,
    issue_attestation,
    same_id,
    subject_for_episode,
    subject_for_match_keys,
)
from .disclosing import audit_code
from .receipts import answer_is_sound, receipt_time
from .subject_access import remember_child
from .withdrawals import basis_text, mark_known_withdrawals

__all__ = [
    "Decision",
    "PractitionerRequests",
    "RequestInput",
    "RequestRecord",
    "remember_answered_children",
]

log = logging.getLogger("cafx.federation.requests")

Kind = Literal["existence_check", "disclosure", "transfer"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


_CONTROL_IN_PROSE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tabs, line breaks kept


def _no_controls(pattern: re.Pattern[str]) -> Callable[[str | None], str | None]:
    """A validator refusing control characters: they are no part of a name, a role or a note, and
    PostgreSQL refuses NUL in a text column (a 500 rather than a located 422)."""

    def check(value: str | None) -> str | None:
        if value is not None and pattern.search(value):
            raise PydanticCustomError(
                "text.control_characters", "control characters are not allowed"
            )
        return value

    return check


Line = Annotated[str, AfterValidator(_no_controls(CONTROL_CHARACTERS))]


class Practitioner(_Input):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    name: Line = Field(min_length=1, max_length=200)
    role: Line = Field(min_length=1, max_length=100)  # stored in plain text: auto-approval reads it
    agency: Line = Field(min_length=1, max_length=200)
    agency_type: AgencyType


class MatchKeys(_Input):
    given_names: str = Field(min_length=1, max_length=100)
    family_name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(has_letters)]
    date_of_birth: dt.date
    postcode: str | None = Field(None, max_length=10)
    nhs_number: str | None = Field(None, max_length=12)
    upn: str | None = Field(None, max_length=13)


class OverrideInput(_Input):
    justification: str = Field(min_length=20, max_length=4000)
    expires_at: AwareDatetime  # a time limit with its offset: no guessing which clock was meant

    @field_validator("expires_at")
    @classmethod
    def _a_time_limit(cls, value: dt.datetime) -> dt.datetime:
        now = dt.datetime.now(dt.UTC)
        if value <= now:
            raise ValueError("an override must end in the future")
        if value - now > MAX_OVERRIDE:
            raise ValueError("an override lasts at most 30 days")
        return value


class RequestInput(_Input):
    kind: Literal["existence_check", "disclosure"]
    practitioner: Practitioner
    purpose: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=2000)
    target_authority: str = Field(pattern=r"^[ENSW][0-9]{8}$")
    child: MatchKeys | None = None
    episode_ref: str | None = Field(
        None, min_length=1, max_length=64, json_schema_extra={"format": "uuid"}
    )
    sections: list[Section] | None = Field(None, min_length=1)
    override: OverrideInput | None = None

    @field_validator("episode_ref")
    @classmethod
    def _an_episode_id(cls, value: str | None) -> str | None:
        """Spelt as the holder records it (lower case, hyphens): otherwise the answer, which names
        the episode the holder's way, would not match this request, and the disclosure the holder
        made and registered would be thrown away here."""
        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("an episode reference is the id an existence check answered") from None

    @model_validator(mode="after")
    def _fits_its_kind(self) -> RequestInput:
        if self.kind == "existence_check" and (self.child is None or self.override is not None):
            raise ValueError("an existence check names the child's match keys (and no override)")
        if self.kind == "disclosure" and self.episode_ref is None:
            raise ValueError("a disclosure names the episode reference from an existence check")
        return self


class Decision(_Input):
    decision: Literal["approve", "reject"]
    lead_contact_id: Line = Field(min_length=1, max_length=100)
    note: Annotated[str | None, AfterValidator(_no_controls(_CONTROL_IN_PROSE))] = Field(
        None, max_length=2000, validate_default=True
    )

    @field_validator("note")
    @classmethod
    def _a_rejection_says_why(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("decision") == "reject" and not (value or "").strip():
            raise PydanticCustomError("decision.note_required", "a rejection says why, in a note")
        return value


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: str
    kind: Kind
    state: str
    target: str
    created_at: dt.datetime
    document: dict[str, Any]  # the sealed part: input, decisions, answer
    # When consent to what was disclosed was withdrawn (its received copy marked): DESIGN 3.5.
    withdrawn_at: dt.datetime | None = None

    def public(self) -> dict[str, Any]:
        """What the requesting borough system sees: the answer, its content gone once consent to
        it was withdrawn (what was disclosed, and when it was withdrawn, stay)."""
        return {
            "request_id": self.id,
            "kind": self.kind,
            "state": self.state,
            "target_authority": self.target,
            "created_at": self.created_at.isoformat(),
            "decisions": self.document.get("decisions", []),
            "answer": self._answer(),
            "error": self.document.get("error"),
        }

    def _answer(self) -> dict[str, Any] | None:
        answer = self.document.get("answer")
        if answer is None or self.kind != "disclosure":
            return answer
        if self.withdrawn_at is None:
            return {**answer, "withdrawn_at": None}
        kept = {name: value for name, value in answer.items() if name != "content"}
        return {**kept, "withdrawn_at": self.withdrawn_at.isoformat()}

    def decided(self) -> dict[str, Any]:
        """What a system that passed on a decision sees, unless it raised the request: the state,
        the decisions and the answer's outcome (for a disclosure, the sections disclosed), never
        the content nor the contact details a holder gave; the raiser reads those
        (`GET /requests/{id}`)."""
        answer = self.document.get("answer")
        if answer is not None:
            answer = {name: answer[name] for name in ("outcome", "sections") if name in answer}
        return {**self.public(), "answer": answer}

    def for_decision(self) -> dict[str, Any]:
        """What a system deciding it sees: also what was asked, about whom, and why."""
        return {**self.decided(), "input": self.document["input"]}


# (target, path, body, attestation) -> (status, JSON answer)
Call = Callable[[str, str, Mapping[str, Any], str], Awaitable[tuple[int, dict[str, Any]]]]
AnswerCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]  # (request input, answer)


_APPROVAL_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# A request is sent the moment it is approved; one still `approved` this long after its approval was
# cut off by a stop mid-send. It is failed, not sent again: the first send may have reached the
# target, and one approval must not disclose twice. The practitioner raises it again.
INTERRUPTED_AFTER = dt.timedelta(minutes=5)
DECIDING = ("awaiting_verification", "awaiting_second_approval")  # a lead contact's to decide


def _lapsed(override: Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether a request's override (as raised) has reached its time limit at `now`."""
    return aware_utc(dt.datetime.fromisoformat(override["expires_at"])) <= now


_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _take_answer(
    document: dict[str, Any], status: int, answer: dict[str, Any], sound: AnswerCheck
) -> str:
    """Put the target's answer into the request's document; the request's next state. `sound`
    judges a disclosure's content-bearing answer (receipts.answer_is_sound)."""
    if status == 202 and answer.get("state") == "pending":
        approval_id = answer.get("approval_id")
        if isinstance(approval_id, str) and _APPROVAL_ID.fullmatch(approval_id):
            document["approval_id"] = approval_id
            return "awaiting_holder"  # the holder's lead contact decides; a message will tell us
    elif status in (200, 202) and (
        document["input"]["kind"] != "disclosure" or sound(document["input"], answer)
    ):
        document["answer"], document["error"] = answer, None
        return "answered"
    elif status not in (200, 202):
        error = answer.get("error")  # the peer's word: kept only if it looks like a wire code
        document["answer"] = None
        document["error"] = (
            error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "refused"
        )
        return "failed" if status >= 500 else "refused"  # a target broken or full refused nothing
    document["answer"], document["error"] = None, "bad_answer"
    return "failed"


def _bound(request_id: str) -> bytes:
    return associated_data("practitioner_requests", request_id, "sealed")


class PractitionerRequests:
    def __init__(
        self,
        *,
        me: str,
        ring: KeyRing,
        audit: AuditLog,
        signing_key: OKPKey,
        is_lead_contact: LeadContactCheck,
        call: Call,
        key_for: KeyLookup,
        auto_approve_roles: frozenset[str] = frozenset(),
        auto_approver: str | None = None,
    ) -> None:
        self.me, self.ring, self.audit, self.key = me, ring, audit, signing_key
        self.is_lead_contact, self.call, self.key_for = is_lead_contact, call, key_for
        self.auto_approve_roles, self.auto_approver = auto_approve_roles, auto_approver

    def _sound_from(self, record: RequestRecord) -> AnswerCheck:
        def sound(asked: Mapping[str, Any], answer: Mapping[str, Any]) -> bool:
            return answer_is_sound(
                answer,
                asked=asked,
                holder=record.target,
                me=self.me,
                key_for=self.key_for,
                sent_at=record.created_at,
                override_id=record.document.get("override_id"),
            )

        return sound

    # --- storage -------------------------------------------------------------------------------

    async def _write(
        self,
        connection: AsyncConnection,
        record: RequestRecord,
        *,
        new: bool = False,
        only_from: str | None = None,
    ) -> bool:
        """Store `record`; with `only_from`, only if the stored request is still in that state.
        Whether it was stored."""
        sealed = seal(json.dumps(record.document).encode(), self.ring, _bound(record.id))
        values = {
            "state": record.state,
            "key_id": sealed.key_id,
            "sealed": sealed.to_bytes(),
            # plain beside the request only while it waits for the holder's answer naming it
            "approval_id": (
                record.document.get("approval_id") if record.state == "awaiting_holder" else None
            ),
        }
        if new:
            practitioner = record.document["input"]["practitioner"]
            await connection.execute(
                insert(practitioner_requests).values(
                    id=record.id,
                    kind=record.kind,
                    target=record.target,
                    client_id=record.document["client_id"],
                    role=practitioner["role"],
                    created_at=record.created_at,
                    **values,
                )
            )
            return True
        changed = update(practitioner_requests).where(practitioner_requests.c.id == record.id)
        if only_from is not None:
            changed = changed.where(practitioner_requests.c.state == only_from)
        return (await connection.execute(changed.values(**values))).rowcount == 1

    async def get(
        self, request_id: str, connection: AsyncConnection | None = None
    ) -> RequestRecord:
        if connection is None:
            async with self.audit.engine.connect() as reading:
                return await self.get(request_id, reading)
        row = (
            await connection.execute(
                select(practitioner_requests).where(practitioner_requests.c.id == request_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFound("no such request")
        document = json.loads(open_(row.sealed, self.ring, _bound(row.id)))
        created = aware_utc(row.created_at)  # SQLite returns it without its offset
        withdrawn = None
        if row.kind == "disclosure" and row.state == "answered":
            withdrawn = await connection.scalar(
                select(received_copies.c.withdrawn_at)
                .where(
                    received_copies.c.request_id == row.id,
                    received_copies.c.withdrawn_at.is_not(None),
                )
                .limit(1)
            )
        return RequestRecord(
            row.id,
            row.kind,
            row.state,
            row.target,
            created,
            document,
            None if withdrawn is None else aware_utc(withdrawn),
        )

    async def waiting(self, connection: AsyncConnection | None = None) -> list[RequestRecord]:
        """Requests a lead contact of this borough must look at (the console's queue); with a
        `connection`, read in it (the caller's audit transaction)."""
        if connection is None:
            async with self.audit.engine.connect() as reading:
                return await self.waiting(reading)
        rows = await connection.execute(
            select(practitioner_requests.c.id)
            .where(practitioner_requests.c.state.in_(DECIDING))
            .order_by(practitioner_requests.c.created_at)
        )
        return [await self.get(row.id, connection) for row in rows.all()]

    async def recent(self, limit: int = 10) -> list[RequestRecord]:
        """The latest requests past verification (the console shows what became of them)."""
        async with self.audit.engine.connect() as connection:
            rows = await connection.execute(
                select(practitioner_requests.c.id)
                .where(practitioner_requests.c.state.not_in(DECIDING))
                .order_by(practitioner_requests.c.created_at.desc())
                .limit(limit)
            )
            return [await self.get(row.id, connection) for row in rows.all()]

    # --- the workflow ----------------------------------------------------------------------------

    async def create(
        self,
        client_id: str,
        request: RequestInput,
        request_id: str,
        *,
        idempotency_key: str | None = None,
    ) -> RequestRecord:
        """Raise a request. With an `idempotency_key`, the same request again from the same client
        returns the first one as it stands (a double submit raises, and sends, nothing twice);
        another request under the same key is a 409 `idempotency_key_reused`. The caller checks
        that the target is an active member (the API does, against the signed metadata).

        Auto-approval by role is a shortcut, not a condition: if it is refused (the auto-approver
        is the practitioner, or no longer a listed lead contact; audited as a refused decision),
        the request is still raised and waits for a lead contact like any other. Refusing the
        request instead would answer 403 for one already stored and queued."""
        if request.target_authority == self.me:
            raise SchemaViolation(
                "a request goes to another member, not to this node's own authority",
                problems=[
                    Problem(
                        ("target_authority",),
                        "request.target_is_self",
                        "the target is this node's own authority",
                    )
                ],
            )
        record = RequestRecord(
            id=str(uuid.uuid4()),
            kind=request.kind,
            state="awaiting_verification",
            target=request.target_authority,
            created_at=dt.datetime.now(dt.UTC),
            document={
                "client_id": client_id,
                "input": request.model_dump(mode="json"),
                "decisions": [],
            },
        )
        async with self.audit.transaction() as connection:
            if idempotency_key is not None:
                first = await self._claim_key(
                    connection, client_id, idempotency_key, request, record.id
                )
                if first is not None:
                    return first
            await self._write(connection, record, new=True)
            await self.audit.append(
                connection,
                AuditDraft(
                    actor=f"client:{client_id}",
                    action="request.create",
                    outcome=Outcome.SUCCESS,
                    subject=record.id,
                    request_id=request_id,
                    details={"kind": request.kind, "target": request.target_authority},
                ),
            )
        auto = (
            request.kind == "existence_check"
            and self.auto_approver is not None
            and request.practitioner.role in self.auto_approve_roles
        )
        if auto and self.auto_approver is not None:
            try:
                return await self.decide(
                    record.id,
                    Decision(
                        decision="approve",
                        lead_contact_id=self.auto_approver,
                        note="auto-approved by role",
                    ),
                    request_id,
                    via="auto",
                )
            except GatewayError as refused:  # a refused decision is audited by decide()
                log.warning(
                    "auto-approval refused; the request waits for a lead contact",
                    extra={"request": record.id, "reason": refused.wire_code},
                )
                return await self.get(record.id)
        return record

    async def _claim_key(
        self,
        connection: AsyncConnection,
        client_id: str,
        key: str,
        request: RequestInput,
        new_id: str,
    ) -> RequestRecord | None:
        """The request first raised under `key`, or None after keeping `key` for `new_id`. Inside
        the audit transaction, which serialises creations: two submits cannot both be first. Only
        the id is kept with the key; the request itself stays sealed."""
        digest = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        row = await first_answer(connection, client_id, key)
        if row is None:
            await connection.execute(
                insert(idempotency_keys).values(
                    client_id=client_id,
                    key=key,
                    request_hash=digest,
                    status=201,
                    body={"request_id": new_id},
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
            return None
        if row.request_hash != digest or "request_id" not in row.body:
            raise Conflict(
                "this Idempotency-Key was used for another request", code="idempotency_key_reused"
            )
        return await self.get(str(row.body["request_id"]), connection)

    async def decide(
        self, record_id: str, decision: Decision, request_id: str, *, via: str
    ) -> RequestRecord:
        """A lead contact's decision. `via` says who passed it on: `client:<id>` (a borough system
        through the API, which asserts the lead contact), `console:<id>` (the lead contact signed in)
        or `auto` (auto-approval by role)."""
        try:
            listed = self.is_lead_contact(self.me, decision.lead_contact_id)
        except PeerUnavailable as unusable:  # no metadata in force: nobody can be checked
            await self._audit_refusal(record_id, decision, request_id, unusable.wire_code, via)
            raise
        if not listed:
            await self._audit_refusal(record_id, decision, request_id, "not_lead_contact", via)
            raise Forbidden(
                "only a listed lead CAF contact of this borough can decide", code="not_lead_contact"
            )
        try:
            record, state = await self._decide(record_id, decision, request_id, via)
        except (Forbidden, Conflict, NotFound) as refused:  # rolled back: recorded on its own
            await self._audit_refusal(
                record_id, decision, request_id, refused.wire_code, via, listed=True
            )
            raise
        if state == "approved":
            record = await self._send(record, request_id)
        return record

    async def _decide(
        self, record_id: str, decision: Decision, request_id: str, via: str
    ) -> tuple[RequestRecord, str]:
        async with self.audit.transaction() as connection:
            record = await self.get(record_id, connection)
            document = dict(record.document)
            practitioner_id = document["input"]["practitioner"]["id"]
            previous = [d["by"] for d in document["decisions"]]
            if record.state not in DECIDING:
                raise Conflict(f"the request is {record.state}")
            deciding = decision.lead_contact_id
            if same_id(deciding, practitioner_id) or any(same_id(deciding, p) for p in previous):
                raise Forbidden(
                    "the requester, or someone who already approved, cannot approve again",
                    code="self_approval",
                )
            if record.state == "awaiting_second_approval" and via.startswith("client:"):
                # Two people, not one system naming two: the second approval cannot come from
                # the client that passed on the first, nor from the one that raised the request
                # (either could assert any lead contact's id).
                involved = {d.get("via") for d in document["decisions"]}
                involved.add(f"client:{document.get('client_id')}")
                if via in involved:
                    raise Forbidden(
                        "an override's second approval must come from another system or the"
                        " console, not the one that raised the request or passed on the first",
                        code="self_approval",
                    )
            override = document["input"].get("override")
            now = dt.datetime.now(dt.UTC)
            if override is not None and decision.decision == "approve" and _lapsed(override, now):
                raise Conflict("the override's time limit has passed; raise a new request")
            document["decisions"] = [
                *document["decisions"],
                {
                    "by": deciding,
                    "decision": decision.decision,
                    "note": decision.note,
                    "at": now.isoformat(),
                    "via": via,
                },
            ]
            if decision.decision == "reject":
                state = "rejected"
            elif override is not None and record.state == "awaiting_verification":
                state = "awaiting_second_approval"
            else:
                state = "approved"
            record = RequestRecord(
                record.id, record.kind, state, record.target, record.created_at, document
            )
            await self._write(connection, record)
            await self.audit.append(
                connection,
                AuditDraft(
                    actor=f"lead:{decision.lead_contact_id}",
                    action="request.decide",
                    outcome=Outcome.SUCCESS if decision.decision == "approve" else Outcome.REFUSED,
                    subject=record.id,
                    request_id=request_id,
                    details={
                        "decision": decision.decision,
                        "state": state,
                        "via": audit_code(via),  # which system passed it on, or the console
                    },
                ),
            )
        return record, state

    async def _audit_refusal(
        self,
        record_id: str,
        decision: Decision,
        request_id: str,
        reason: str,
        via: str,
        *,
        listed: bool = False,
    ) -> None:
        """A refused decision, in its own transaction. The deciding id is written down only once
        it is known to be a listed lead contact's (`listed`); any other could be anything."""
        await self.audit.record(
            AuditDraft(
                actor=f"lead:{audit_code(decision.lead_contact_id)}" if listed else "lead:unlisted",
                action="request.decide",
                outcome=Outcome.REFUSED,
                subject=audit_code(record_id),
                reason=reason,
                request_id=request_id,
                details={"decision": decision.decision, "via": audit_code(via)},
            )
        )

    def _attestation(self, record: RequestRecord) -> str:
        document = record.document
        request = document["input"]
        approved = [d for d in document["decisions"] if d["decision"] == "approve"]
        approvals = [d["by"] for d in approved]
        if request["kind"] == "existence_check":
            subject = subject_for_match_keys({k: v for k, v in request["child"].items() if v})
        else:
            subject = subject_for_episode(request["episode_ref"])
        grant = None
        if request.get("override"):
            justification = request["override"]["justification"]
            grant = OverrideGrant(
                override_id=document["override_id"],
                approved_by=approvals[1],
                expires_at=aware_utc(dt.datetime.fromisoformat(request["override"]["expires_at"])),
                justification_sha256=hashlib.sha256(justification.encode()).hexdigest(),
            )
        return issue_attestation(
            self.key,
            issuer=self.me,
            audience=record.target,
            practitioner=request["practitioner"],
            purpose=request["purpose"],
            reason=request["reason"],
            subject=subject,
            approved_by=approvals[0],
            approved_at=dt.datetime.fromisoformat(approved[0]["at"]),
            override=grant,
        )

    async def _send(self, record: RequestRecord, request_id: str) -> RequestRecord:
        document = dict(record.document)
        request = document["input"]
        if request["kind"] == "existence_check":
            path, body = "/existence-checks", {"match": request["child"]}
        else:
            path = "/disclosures"
            body = {"episode_ref": request["episode_ref"], "purpose": request["purpose"]}
            if request.get("sections"):
                body["sections"] = request["sections"]
        try:
            if request.get("override"):  # in here: a failure fails the request, not leaves it
                document["override_id"] = await self._record_override(record, request_id)
                record = RequestRecord(
                    record.id, record.kind, record.state, record.target, record.created_at, document
                )
            status, answer = await self.call(record.target, path, body, self._attestation(record))
            state = _take_answer(document, status, answer, self._sound_from(record))
        except GatewayError as error:
            state, document["error"] = "failed", error.wire_code
        except MemberError as error:  # the target left the federation or was suspended since
            state, document["error"] = "failed", error.code
        except Exception as exc:  # never left `approved` with nobody to send it: failed, and why
            log.error("request not sent", extra={"request": record.id, "error": type(exc).__name__})
            state, document["error"] = "failed", "internal_error"
        record = RequestRecord(
            record.id, record.kind, state, record.target, record.created_at, document
        )
        async with self.audit.transaction() as connection:
            settled = await self._settle(
                connection,
                record,
                f"member:{self.me}",
                "request.send",
                request_id,
                only_from="approved",
            )
        if not settled:  # failed as interrupted meanwhile (a send that outlived the sweep's wait)
            log.error("answer after the request was failed", extra={"request": record.id})
        # As stored: a withdrawal that reached us before the answer has marked its copy already.
        return await self.get(record.id)

    async def fail_interrupted(self, now: dt.datetime | None = None) -> list[str]:
        """Fail the requests left `approved` by a stop mid-send (INTERRUPTED_AFTER); their ids."""
        moment = now or dt.datetime.now(dt.UTC)
        failed = []
        async with self.audit.transaction() as connection:
            rows = await connection.execute(
                select(practitioner_requests.c.id).where(
                    practitioner_requests.c.state == "approved"
                )
            )
            for row in rows.all():
                record = await self.get(row.id, connection)
                approved_at = max(
                    dt.datetime.fromisoformat(d["at"])
                    for d in record.document["decisions"]
                    if d["decision"] == "approve"
                )
                if moment - approved_at < INTERRUPTED_AFTER:
                    continue  # being sent now, perhaps by another replica
                document = {**record.document, "error": "interrupted"}
                record = RequestRecord(
                    record.id, record.kind, "failed", record.target, record.created_at, document
                )
                # Only from `approved`: one replica fails it, once, and never over an answer.
                if not await self._settle(
                    connection, record, "node", "request.send", None, only_from="approved"
                ):
                    continue
                log.error("request interrupted while sending", extra={"request": record.id})
                failed.append(record.id)
        return failed

    async def fail_expired_overrides(self, now: dt.datetime | None = None) -> list[str]:
        """Fail the requests still awaiting a lead contact whose override's time limit has passed
        (`override_expired`): no approval can send them any more, so they leave the queue. Their
        ids."""
        moment = now or dt.datetime.now(dt.UTC)
        failed = []
        async with self.audit.transaction() as connection:
            rows = await connection.execute(
                select(practitioner_requests.c.id, practitioner_requests.c.state).where(
                    practitioner_requests.c.state.in_(DECIDING)
                )
            )
            for row in rows.all():
                record = await self.get(row.id, connection)
                override = record.document["input"].get("override")
                if override is None or not _lapsed(override, moment):
                    continue
                document = {**record.document, "error": "override_expired"}
                record = RequestRecord(
                    record.id, record.kind, "failed", record.target, record.created_at, document
                )
                if await self._settle(
                    connection, record, "node", "request.expire", None, only_from=row.state
                ):
                    failed.append(record.id)
        if failed:
            log.info("requests failed: override expired", extra={"requests": failed})
        return failed

    async def _settle(
        self,
        connection: AsyncConnection,
        record: RequestRecord,
        actor: str,
        action: str,
        request_id: str | None,
        only_from: str | None = None,
        **details: str,
    ) -> bool:
        """Store the request's new state (with `only_from`: if it is still in that state); an
        answered disclosure also goes into our register. Whether it was stored."""
        if not await self._write(connection, record, only_from=only_from):
            return False
        if record.state == "answered":
            await remember_child(connection, record.document, self.ring)
            if record.kind == "disclosure":
                await self._keep_received(connection, record)
        await self.audit.append(
            connection,
            AuditDraft(
                actor=actor,
                action=action,
                outcome={
                    "answered": Outcome.SUCCESS,
                    "awaiting_holder": Outcome.SUCCESS,
                    "refused": Outcome.REFUSED,
                }.get(record.state, Outcome.FAILED),
                subject=record.id,
                reason=record.document.get("error"),
                request_id=request_id,
                details={"target": record.target, "state": record.state, **details},
            ),
        )
        return True

    async def holder_answered(
        self, connection: AsyncConnection, sender: str, body: Mapping[str, Any], request_id: str
    ) -> None:
        """A `disclosure_answer` message: the holder's lead contact decided on a request that was
        `awaiting_holder`. Completes it as a direct answer would, inside the inbox transaction (an
        audit transaction). The message is the holder's own, for the approval it holds: an answer
        that does not fit fails the request (`bad_answer`) rather than leaving it waiting for good."""
        approval_id = body.get("approval_id")
        if not isinstance(approval_id, str) or not _APPROVAL_ID.fullmatch(approval_id):
            raise NotFound("no request awaits this approval")
        waiting = practitioner_requests.c.state == "awaiting_holder"
        found = await connection.scalar(
            select(practitioner_requests.c.id).where(
                waiting,
                practitioner_requests.c.approval_id == approval_id,
                practitioner_requests.c.target == sender,
            )
        )
        if found is None:  # one held before migration 0012 has its approval id sealed only
            for row in await connection.execute(
                select(practitioner_requests.c.id).where(
                    waiting,
                    practitioner_requests.c.approval_id.is_(None),
                    practitioner_requests.c.target == sender,
                )
            ):
                unsealed = await self.get(row.id, connection)
                if unsealed.document.get("approval_id") == approval_id:
                    found = row.id
                    break
        if found is None:
            raise NotFound("no request awaits this approval from this member")
        record = await self.get(found, connection)
        answer = dict(body)  # with its approval_id: which of the holder's decisions this is
        disclosed = answer.get("outcome") == "disclosed"
        document = dict(record.document)  # an answer that does not fit fails it: bad_answer
        state = _take_answer(document, 200 if disclosed else 403, answer, self._sound_from(record))
        record = RequestRecord(
            record.id, record.kind, state, record.target, record.created_at, document
        )
        await self._settle(
            connection,
            record,
            f"member:{sender}",
            "request.answer",
            request_id,
            approval=approval_id,
        )

    async def _keep_received(self, connection: AsyncConnection, record: RequestRecord) -> None:
        """Our side of the register, and the received copy (sealed) that a withdrawal will mark."""
        answer = record.document["answer"]
        request = record.document["input"]
        approvals = [d["by"] for d in record.document["decisions"] if d["decision"] == "approve"]
        # The holder's time, as its receipt (checked by receipts.answer_is_sound) gives it.
        disclosed_at = receipt_time(answer["receipt"]) or dt.datetime.now(dt.UTC)
        basis = basis_text(answer["basis"])  # checked by receipts.answer_is_sound
        await connection.execute(
            insert(register).values(
                id=str(uuid.uuid4()),
                episode_id=answer["episode_ref"],
                direction="received",
                counterpart=record.target,
                requested_by=request["practitioner"]["id"],
                approved_by=approvals[0] if approvals else None,
                # As on the holder's side: an override's approver only when it was relied on.
                second_approved_by=approvals[1]
                if len(approvals) > 1 and answer["override"]
                else None,
                holder_approved_by=answer.get("holder_approved_by"),  # in the receipt too
                sections=answer["sections"],
                basis=basis,
                override=answer["override"],
                disclosed_at=disclosed_at,
                receipt=answer["receipt"],
            )
        )
        copy_id = str(uuid.uuid4())
        sealed = seal(
            json.dumps(answer["content"]).encode(),
            self.ring,
            associated_data("received_copies", copy_id, "sealed"),
        )
        await connection.execute(
            insert(received_copies).values(
                id=copy_id,
                request_id=record.id,
                holder=record.target,
                episode_ref=answer["episode_ref"],
                basis=basis,
                received_at=dt.datetime.now(dt.UTC),
                key_id=sealed.key_id,
                sealed=sealed.to_bytes(),
            )
        )
        await mark_known_withdrawals(connection, record.target, answer["episode_ref"])

    async def _record_override(self, record: RequestRecord, request_id: str) -> str:
        request = record.document["input"]
        approvals = [d["by"] for d in record.document["decisions"] if d["decision"] == "approve"]
        override_id = str(uuid.uuid4())
        sealed = seal(
            request["override"]["justification"].encode(),
            self.ring,
            associated_data("overrides", override_id, "sealed"),
        )
        async with self.audit.transaction() as connection:
            await connection.execute(
                insert(overrides).values(
                    id=override_id,
                    request_id=record.id,
                    requested_by=request["practitioner"]["id"],
                    approved_by=approvals[-1],
                    # The client's offset kept would be dropped by SQLite: the instant, in UTC.
                    expires_at=aware_utc(
                        dt.datetime.fromisoformat(request["override"]["expires_at"])
                    ).astimezone(dt.UTC),
                    created_at=dt.datetime.now(dt.UTC),
                    key_id=sealed.key_id,
                    sealed=sealed.to_bytes(),
                )
            )
            await self.audit.append(
                connection,
                AuditDraft(
                    actor=f"lead:{approvals[-1]}",
                    action="override.grant",
                    outcome=Outcome.SUCCESS,
                    subject=override_id,
                    request_id=request_id,
                    details={"request": record.id},
                ),
            )
        return override_id


async def remember_answered_children(engine: AsyncEngine, ring: KeyRing) -> int:
    """`cafx register reindex`: what every answered request told of its child, added to the
    register per child as if answered when it was raised (requests answered before migration 0019
    added nothing; adding again changes nothing), a request to a transaction so that a running
    node's writers wait for one at most. How many named an episode."""
    async with engine.connect() as connection:
        ids = await connection.scalars(
            select(practitioner_requests.c.id)
            .where(practitioner_requests.c.state == "answered")
            .order_by(practitioner_requests.c.created_at)
        )
        answered = ids.all()
    named = 0
    for request_id in answered:
        async with engine.begin() as connection:
            row = (
                await connection.execute(
                    select(
                        practitioner_requests.c.created_at, practitioner_requests.c.sealed
                    ).where(practitioner_requests.c.id == request_id)
                )
            ).one_or_none()
            if row is None:  # gone since (retention)
                continue
            document = json.loads(open_(row.sealed, ring, _bound(request_id)))
            named += await remember_child(connection, document, ring, aware_utc(row.created_at))
    return named
