"""`/federation/v1`: what a node answers other members (DESIGN 3.4), behind the transport layer
(mutual TLS + RFC 9421 verified before any handler runs).

Every call is checked against the sender's CAF-Attestation, decided on THIS side (matching for
existence checks, the consent engine for disclosures), audited with its reason, and answered without
assessment content unless consent (or an override in force) permits the sections asked for.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, Literal, get_args

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from directory.members import MemberDirectory, MemberError
from schemas import (
    AgencyType,
    ClosureOutcome,
    Episode,
    EpisodeState,
    Section,
    StepDown,
    problems_from,
)

from ..audit import AuditDraft, Outcome
from ..errors import (
    ConsentRefused,
    FederationRefused,
    GatewayError,
    NotFound,
    SchemaViolation,
    UnsupportedFormat,
)
from ..keys import (
    AUDIT,
    DISCLOSURE_APPROVALS,
    EPISODES,
    MEMBERS,
    NOTIFICATIONS,
    OUTBOX,
    REQUEST_ID,
    REQUESTS,
    SETTINGS,
    SIGNING_KEY,
    TRANSFERS,
)
from ..protection import Match, MatchOutcome, NameQuery, judge
from .attestation import (
    Attestation,
    subject_for_episode,
    subject_for_match_keys,
    verify_attestation,
)
from .directory import directory_services
from .disclosing import Asked, consent_now, disclose, refusal_code
from .disclosing import audit_code as _code
from .notifications import KINDS as NOTIFICATION_KINDS
from .outbox import Message, receive
from .practitioner import MatchKeys
from .transport import verified_json, verified_request
from .withdrawals import receive_withdrawal, withdrawal_of

__all__ = ["directory_of", "federation_routes", "social_care_involved"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ExistenceCheck(_Body):
    match: MatchKeys  # as the requesting node took them from its borough system


class DisclosureRequest(_Body):
    episode_ref: str = Field(min_length=1, max_length=64)
    purpose: str = Field(min_length=1, max_length=100)
    sections: list[Section] | None = Field(None, min_length=1)


_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
Kind = Literal[
    "consent_withdrawn",
    "tac_notification",
    "lead_professional_update",
    "episode_update",
    "transfer_offer",
    "transfer_accept",
    "transfer_commit",
    "transfer_withdraw",
    "transfer_decline",
    "disclosure_answer",
]
KINDS: frozenset[str] = frozenset(get_args(Kind))


class IncomingMessage(_Body):
    # As an outbox writes it (a UUID): it becomes the audit entry's subject, where free text from
    # a peer has no place.
    id: str = Field(pattern=_UUID)
    kind: Kind
    body: dict[str, Any]


class Envelope(BaseModel):
    """A message as the batch takes it: only the id it is acknowledged by. Whatever else is wrong
    with it (a kind this release does not know, an id that is not a lower-case UUID, another
    field) is refused for that message alone (`_readable`): a member on another release must not
    have every message to us refused, and dead-lettered, behind one we cannot read."""

    # "allow": the other fields are checked message by message, with the strict model.
    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)
    id: str


class MessageBatch(_Body):
    messages: list[Envelope] = Field(min_length=1, max_length=100)


def _readable(envelope: Envelope) -> IncomingMessage | str:
    """The message, or the code it is refused with: `unsupported_format` for a kind this release
    does not know, `schema_violation` for anything else not as an outbox writes it."""
    raw = envelope.model_dump()
    try:
        return IncomingMessage.model_validate(raw)
    except ValidationError:
        kind = raw.get("kind")
        if isinstance(kind, str) and kind not in KINDS:
            return UnsupportedFormat.code
        return SchemaViolation.code


def directory_of(request: web.Request) -> MemberDirectory:
    return request.config_dict[MEMBERS]()


async def _body(request: web.Request, model: type[_Body]) -> Any:
    try:
        return model.model_validate(await verified_json(request))
    except ValidationError as exc:
        raise SchemaViolation(
            "the request body is not valid", problems=problems_from(exc)
        ) from None


def _attestation(request: web.Request, subject: str) -> Attestation:
    verified = verified_request(request)
    token = verified.attestation  # only as the signature covers it, never the bare header
    if not token:
        raise FederationRefused("a CAF-Attestation is required", code="attestation_invalid")
    directory = directory_of(request)

    def key_for(member: str, kid: str, at: dt.datetime) -> Any:
        try:
            return directory.key_for(member, kid, at)
        except MemberError as error:
            raise FederationRefused(str(error), code=error.code) from None

    return verify_attestation(
        token,
        sender=verified.sender,
        me=request.config_dict[SETTINGS].member_id,
        key_for=key_for,
        is_lead_contact=directory.is_lead_contact,
        subject=subject,
    )


def _draft(
    request: web.Request,
    action: str,
    subject: str | None,
    outcome: Outcome,
    reason: str | None = None,
    **details: Any,
) -> AuditDraft:
    return AuditDraft(
        actor=f"member:{verified_request(request).sender}",
        action=action,
        outcome=outcome,
        subject=subject,
        reason=reason,
        request_id=request[REQUEST_ID],
        details=details,
    )


async def _audited(
    request: web.Request, action: str, subject: str | None, error: GatewayError
) -> None:
    outcome = Outcome.FAILED if error.status >= 500 else Outcome.REFUSED
    await request.config_dict[AUDIT].record(
        _draft(request, action, subject, outcome, error.wire_code)
    )


def _revealed(found: list[tuple[Match, Episode]], ref: str) -> Episode:
    """The episode a found answer tells of: the found child's (`ref`), an open (or potential)
    episode first, then the most recently closed one."""
    candidates = [e for m, e in found if m.ref == ref]
    candidates.sort(
        key=lambda e: (
            e.state not in (EpisodeState.OPEN, EpisodeState.POTENTIAL),
            e.closure is not None,
        )
    )
    return candidates[0]


async def existence_check(request: web.Request) -> web.Response:
    """Does an open or recent CAF exist for this child? Never assessment content (DESIGN 3.4)."""
    try:
        body = await _body(request, ExistenceCheck)
        match = body.match
        keys = {k: v for k, v in match.model_dump(mode="json").items() if v}
        attestation = _attestation(request, subject_for_match_keys(keys))
        query = NameQuery(
            given_names=match.given_names,
            family_name=match.family_name,
            date_of_birth=match.date_of_birth,
            nhs_number=match.nhs_number,
            upn=match.upn,
            postcode=match.postcode,
        )
        audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
        async with audit.transaction() as connection:
            found = await store.search(connection, query)
            # DESIGN 3.6: an archived episode is kept, no longer accessible, not a recent CAF.
            found = [(m, e) for m, e in found if e.state is not EpisodeState.ARCHIVED]
            verdict = judge([m for m, _ in found])
            outcome = verdict.outcome
            episode = None if verdict.ref is None else _revealed(found, verdict.ref)
            await audit.append(
                connection,
                _draft(
                    request,
                    "federation.existence_check",
                    # Which episode's lead professional and social-care flag were given out.
                    None if episode is None else str(episode.episode_id),
                    Outcome.SUCCESS,
                    practitioner=_code(attestation.practitioner_id),
                    answer=outcome.value,
                    **({"settled_by": "postcode"} if verdict.by_postcode else {}),
                ),
            )
    except GatewayError as error:
        await _audited(request, "federation.existence_check", None, error)
        raise
    if outcome == MatchOutcome.NOT_FOUND:
        return web.json_response({"outcome": "not_found"})
    if episode is None:  # ambiguous
        contacts = directory_of(request).lead_contacts(request.config_dict[SETTINGS].member_id)
        return web.json_response(
            {
                "outcome": "ambiguous",
                "error": "ambiguous_match",
                "lead_contacts": [c.model_dump(mode="json") for c in contacts],
            }
        )
    lead = episode.lead_professional
    return web.json_response(
        {
            "outcome": "found",
            "episode_ref": str(episode.episode_id),
            "state": episode.state.value,
            "lead_professional": None
            if lead is None
            else {
                "name": lead.name,
                "organisation": lead.organisation,
                "telephone": lead.telephone,
                "email": lead.email,
            },
            "social_care_involved": social_care_involved(episode),
        }
    )


def social_care_involved(episode: Episode) -> bool:
    """Whether children's social care is or was involved (protocol 003 section 2: "involved or have
    had prior involvement"): the episode stepped down from it, or was closed stepped up to it, or a
    social care practitioner assessed, leads or is in the team. A step-down from another service
    (CAMHS, youth offending, SEN) says nothing about social care."""
    if episode.source.step_down == StepDown.CSC:
        return True
    if episode.closure is not None and episode.closure.outcome == ClosureOutcome.STEPPED_UP:
        return True
    practitioners = [
        *episode.tac_members,
        *([episode.lead_professional] if episode.lead_professional else []),
        *(a.assessor for a in episode.assessments),
    ]
    return any(p.agency_type == AgencyType.SOCIAL_CARE for p in practitioners)


async def disclosure(request: web.Request) -> web.Response:
    """Share the sections consent permits, on the holder's side (DESIGN 3.5); record both sides.

    When this borough's policy says a lead contact must approve, a permitted disclosure is held
    instead and answered `202 pending`; a refusal is still answered at once."""
    subject_id: str | None = None
    try:
        body = await _body(request, DisclosureRequest)
        attestation = _attestation(request, subject_for_episode(body.episode_ref))
        if body.purpose != attestation.purpose:
            raise FederationRefused(
                "the purpose differs from the attested one", code="attestation_invalid"
            )
        try:
            episode_id = subject_id = str(uuid.UUID(body.episode_ref))
        except ValueError:
            raise NotFound("no such episode") from None
        asked = Asked.from_attestation(attestation, episode_id, body.sections)
        audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
        approvals = request.config_dict.get(DISCLOSURE_APPROVALS)
        actor = f"member:{verified_request(request).sender}"
        async with audit.transaction() as connection:
            stored, decision = await consent_now(connection, store, asked)
            if not decision.permitted:
                code = refusal_code(decision)
                await audit.append(
                    connection,
                    _draft(
                        request,
                        "federation.disclosure",
                        episode_id,
                        Outcome.REFUSED,
                        code,
                        rule=decision.rule.value,
                        consent=_code(decision.consent_id) if decision.consent_id else None,
                        practitioner=_code(attestation.practitioner_id),
                    ),
                )
                return _refusal(request, decision.reason, code)
            if approvals is not None and approvals.needed(decision):
                approval_id = await approvals.hold(
                    connection, asked, decision, actor=actor, request_id=request[REQUEST_ID]
                )
                return web.json_response(
                    {"state": "pending", "approval_id": approval_id}, status=202
                )
            answer = await disclose(
                connection,
                me=request.config_dict[SETTINGS].member_id,
                key=request.config_dict[SIGNING_KEY],
                store=store,
                audit=audit,
                stored=stored,
                decision=decision,
                asked=asked,
                actor=actor,
                request_id=request[REQUEST_ID],
            )
    except GatewayError as error:
        await _audited(
            request,
            "federation.disclosure",
            subject_id,
            error,
        )
        raise
    return web.json_response(answer)


def _refusal(request: web.Request, reason: str, code: str) -> web.Response:
    """A consent refusal: its code and the rule's reason (no personal data), as an error body."""
    error = ConsentRefused(reason, code=code)
    body = {"error": error.wire_code, "message": reason, "request_id": request[REQUEST_ID]}
    return web.json_response(body, status=error.status)


async def messages(request: web.Request) -> web.Response:
    """Batched messages, each applied exactly once (by id), acknowledged one by one; one this
    release cannot read is refused alone (`Envelope`), and the rest applied as usual."""
    try:
        body = await _body(request, MessageBatch)
    except GatewayError as error:  # a batch refused whole is a refusal too
        await _audited(request, "federation.message", None, error)
        raise
    sender = verified_request(request).sender
    audit = request.config_dict[AUDIT]
    read = [(e.id, (e.model_extra or {}).get("kind"), _readable(e)) for e in body.messages]
    batch = [Message(m.id, m.kind, m.body) for *_, m in read if isinstance(m, IncomingMessage)]
    transfers, requests = request.config_dict[TRANSFERS], request.config_dict[REQUESTS]
    notifications, outbox = request.config_dict[NOTIFICATIONS], request.config_dict[OUTBOX]
    episodes = request.config_dict[EPISODES]

    def audited(message_id: str, kind: object, status: str) -> AuditDraft:
        done = status in ("applied", "duplicate")
        return _draft(
            request,
            "federation.message",
            message_id if re.fullmatch(_UUID, message_id) else None,
            Outcome.SUCCESS if done else Outcome.FAILED,
            None if done else status,
            # A kind this release knows, or none: never a peer's free text.
            **({"kind": kind} if isinstance(kind, str) and kind in KINDS else {}),
            status=status,
        )

    async def apply(connection: AsyncConnection, sender: str, message: Message) -> None:
        if message.kind == "consent_withdrawn":  # DESIGN 3.5, see withdrawals.py
            episode_ref, consent_id = withdrawal_of(message.body)
            await receive_withdrawal(connection, outbox, episodes, sender, episode_ref, consent_id)
        elif message.kind.startswith("transfer_"):
            await transfers.apply(connection, sender, message)
        elif message.kind == "disclosure_answer":
            await requests.holder_answered(connection, sender, message.body, request[REQUEST_ID])
        elif message.kind in NOTIFICATION_KINDS:
            await notifications.receive(connection, sender, message)
        # Audited with what it changed, in its transaction: a message applied is never left
        # unrecorded by a failure after its commit (its redelivery is only a `duplicate`).
        await audit.append(connection, audited(message.id, message.kind, "applied"))

    # In audit transactions: completing a request appends to the audit chain with its changes.
    statuses = await receive(audit.engine, sender, batch, apply, begin=audit.transaction)
    acknowledged: list[dict[str, str]] = []
    for message_id, kind, message in read:
        status = statuses[message_id] if isinstance(message, IncomingMessage) else message
        if status != "applied":  # refused, failed (rolled back) or a duplicate: recorded now
            await audit.record(audited(message_id, kind, status))
        acknowledged.append({"id": message_id, "status": status})
    return web.json_response({"acknowledgements": acknowledged})


async def well_known(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    key = request.config_dict[SIGNING_KEY]
    return web.json_response(
        {"member": settings.member_id, "protocol_versions": ["1"], "keys": [key.kid]}
    )


def federation_routes(app: web.Application) -> None:
    app.router.add_post("/existence-checks", existence_check)
    app.router.add_post("/disclosures", disclosure)
    app.router.add_post("/messages", messages)
    app.router.add_get("/.well-known/caf-node", well_known)
    app.router.add_get("/directory/services", directory_services)
