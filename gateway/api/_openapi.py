"""The OpenAPI 3.1 document of /api/v1, built from the same pydantic models the handlers use.

Response bodies are described by small models here. Two tests hold the document to what the node
answers: schemathesis sends generated requests to one node (tests/gateway/test_openapi.py), and
tests/e2e/test_api_document.py walks every operation to a success between real federated nodes,
checking each answer, successes and errors alike, against the document.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from adapters import adapter_names
from schemas import Episode, Practitioner

from ..episodes import ConsentInput, EventBody, WithdrawalInput
from ..federation.notifications import Change
from ..federation.practitioner import Decision, RequestInput
from ..oauth import SCOPES
from ..timeliness import TimeRule
from ._auth import PUBLIC, needs
from ._consents import CheckInput
from ._overdue import MAX_AHEAD_DAYS
from ._overdue import MAX_LISTED as MAX_LISTED_DUE
from ._reports import MAX_CHILDREN
from ._transfers import LISTED_STATES, MAX_LISTED, AcceptInput, CloseInput, OfferInput

__all__ = ["openapi_document", "serve_openapi"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorProblem(_Doc):
    location: str
    rule: str
    message: str
    severity: Literal["error", "warning"]


class Error(_Doc):
    error: str
    message: str
    request_id: str
    problems: list[ErrorProblem] | None = None


class Located(_Doc):
    location: str
    rule: str | None
    message: str | None


class FieldFate(_Doc):
    location: str
    fate: Literal["mapped", "transformed", "extended", "rejected"]
    target: str | None
    rule: str | None
    message: str | None


class Fidelity(_Doc):
    counts: dict[str, int]
    fields: list[FieldFate]


class RejectedRecord(_Doc):
    location: str
    problems: list[Located]


class FormAnswer(_Doc):
    format: str
    episode_ids: list[str]
    fidelity: Fidelity
    rejected: list[RejectedRecord]
    warnings: list[Located]


# A child's match keys in a query string (`federation.subject_access.CHILD_KEYS`).
_CHILD_KEYS: list[dict[str, Any]] = [
    {"name": name, "in": "query", "schema": schema}
    for name, schema in (
        ("nhs_number", {"type": "string"}),
        ("upn", {"type": "string"}),
        ("given_name", {"type": "string"}),
        ("family_name", {"type": "string"}),
        ("date_of_birth", {"type": "string", "format": "date"}),
    )
]


class SearchMatch(_Doc):
    episode_id: str
    confidence: float
    basis: str
    state: str
    home_authority: str


class SearchResult(_Doc):
    matches: list[SearchMatch]


class DueItem(_Doc):
    episode_id: str
    rule: TimeRule
    due_on: str = Field(json_schema_extra={"format": "date"})
    days_overdue: int = Field(description="days past due_on; negative while still to come")


class Overdue(_Doc):
    as_of: str = Field(json_schema_extra={"format": "date"})
    items: list[DueItem]
    more: bool = Field(description="more items were due than `limit` lets through")
    unreadable: list[str] = Field(
        description="ids of episodes that no longer open, left out (`cafx episodes check` says why)"
    )


class QualityReport(_Doc):
    """Standard 000 E and report 004: counts only, and the closed episodes drawn for audit."""

    from_: str = Field(alias="from", json_schema_extra={"format": "date"})
    to: str = Field(json_schema_extra={"format": "date"})
    held_by_state: dict[str, int] = Field(description="episodes held here now, by state")
    assessed: int = Field(description="episodes whose first assessment was completed in the period")
    assessed_per_10000_children: float | None = Field(
        description="assessed per 10,000 of the borough's children (given as children), or null"
    )
    whole_family: int = Field(description="of those assessed, recorded as part of a family")
    stepped_down_by_service: dict[str, int] = Field(
        description="of those assessed, begun from a step-down, by service"
    )
    closed_by_outcome: dict[str, int] = Field(description="closed in the period, by outcome")
    reviews: int = Field(description="reviews held in the period")
    tac_meetings: int = Field(description="of those, held at a TAC meeting")
    unreadable: int = Field(description="episodes that no longer open (`cafx episodes check`)")
    audit_sample: list[str] = Field(
        description="ids of the episodes closed in the period drawn for audit: one in"
        " audit_one_in (at least one), the same draw for the same period"
    )
    audit_one_in: int


class ConsentRecorded(_Doc):
    episode_id: str
    consent_id: str


class ConsentWithdrawn(_Doc):
    consent_id: str
    withdrawn_on: str | None
    changed: bool


class StatementWhy(_Doc):
    consent_id: str
    valid: bool
    applies: bool
    excludes: bool
    code: str | None
    rule: str
    reason: str


class ConsentDecision(_Doc):
    decision: Literal["permit", "deny"]
    code: str | None
    rule: str
    consent_id: str | None
    reason: str
    permitted_sections: list[str]
    refused_sections: list[str]
    statements: list[StatementWhy]


class AuditProblem(_Doc):
    kind: str
    sequence: int
    detail: str


class AuditVerification(_Doc):
    ok: bool
    checked: int
    last_sequence: int
    last_hash: str
    anchored_sequence: int
    checkpoints_read: int
    problem: AuditProblem | None


class RegisterEntry(_Doc):
    id: str
    episode_id: str
    direction: Literal["sent", "received"]
    counterpart: str
    requested_by: str
    approved_by: str | None  # the requesting borough's lead contact who verified the request
    second_approved_by: str | None  # a public-interest override's second lead contact
    holder_approved_by: str | None  # the holder's lead contact who released a held disclosure
    sections: list[str]
    basis: str
    override: bool
    disclosed_at: str
    withdrawn_at: str | None
    # The other member refused it and holds nothing of it (a transfer commit it refused)
    returned_at: str | None


class Register(_Doc):
    episode_id: str | None
    practitioner: str | None
    entries: list[RegisterEntry]


class ChildEpisodeRegister(_Doc):
    episode_id: str
    confidence: float  # as a search gives it: below 0.85 the episode may be another child's
    basis: str
    held: bool  # held here; else received from the member that holds it
    entries: list[RegisterEntry]


class ChildRegister(_Doc):
    matches: list[ChildEpisodeRegister]  # held first, each part best match first


class DecisionRecord(_Doc):
    by: str
    decision: Literal["approve", "reject"]
    note: str | None
    at: str
    via: str | None = None  # console:<id>, client:<id> or auto (absent on older decisions)


class RequestView(_Doc):
    request_id: str
    kind: Literal["existence_check", "disclosure", "transfer"]
    state: str
    target_authority: str
    created_at: str
    decisions: list[DecisionRecord]
    answer: dict[str, Any] | None
    error: str | None


class WaitingRequest(RequestView):
    input: RequestInput  # what was asked, about whom, and why: what the lead contact verifies


class RequestQueue(_Doc):
    requests: list[WaitingRequest]


class HeldDisclosure(_Doc):
    approval_id: str
    requester: str
    practitioner_role: str
    agency_type: str
    purpose: str
    reason: str
    sections: list[str]
    episode_id: str
    received_at: str
    state: Literal["pending", "approved", "refused", "rejected"]
    override: bool
    outcome: str | None


class HeldDisclosures(_Doc):
    approvals: list[HeldDisclosure]


class TransferState(_Doc):
    offer_id: str
    state: str
    reason: str | None = Field(
        None, description="why it was withdrawn, declined or released (a code)"
    )


class Transfer(_Doc):
    offer_id: str
    from_: str | None = Field(None, alias="from", description="the offering member (direction in)")
    to: str | None = Field(None, description="the member offered to (direction out)")
    episode_ref: str
    state: str
    offered_at: str
    due_by: str = Field(description="last London day for an answer (working days)")
    escalated_at: str | None = Field(description="when it escalated, unanswered past due_by")
    reason: str | None = Field(description="why it was withdrawn, declined or released (a code)")


class Transfers(_Doc):
    transfers: list[Transfer]


class Notification(_Doc):
    id: str
    kind: Literal["tac_notification", "lead_professional_update", "episode_update"]
    from_: str = Field(alias="from")
    episode_ref: str
    received_at: str
    changed_at: str = Field(description="when the holder made the change (received_at if unsaid)")
    holder_verified: bool = Field(
        description="false: the first word about an episode this node has no record of, or a"
        " former holder's word about a change it made before it moved the episode on (kept, but"
        " not the holder known here speaking)"
    )
    superseded: bool = Field(description="a lead-professional update older than another kept")
    practitioner: Practitioner | None = Field(
        description="the TAC member or lead professional named; for an episode_update, the lead"
        " professional then"
    )
    change: Change | None = Field(description="an episode_update's: a review held or a closure")


class NotificationList(_Doc):
    notifications: list[Notification]


class AccessRule(_Doc):
    kind: Literal["universal", "residents_only", "cross_borough_protocol"]
    protocol: str | None
    members: list[str]
    stated: bool


class EligibilityVerdict(_Doc):
    eligible: bool
    code: str
    reason: str


class ServiceNote(_Doc):
    authority: str
    access: AccessRule
    relevance: float
    distance_m: int | None
    eligibility: EligibilityVerdict | None


class ServiceEntry(BaseModel):
    """An Open Referral UK service document (any of its fields) plus our `cafx` note."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    status: str
    cafx: ServiceNote


class Unanswered(_Doc):
    member: str
    name: str
    reason: str


class ServicePage(_Doc):
    total_items: int
    total_pages: int
    page_number: int
    size: int
    first_page: bool
    last_page: bool
    empty: bool
    contents: list[ServiceEntry]
    answered: list[str] | None = None
    unanswered: list[Unanswered] | None = None
    truncated: bool | None = None  # federated: more services than the 100 that can be paged to


class LeadContactView(_Doc):
    id: str
    name: str
    role: str
    email: str
    phone: str


class MemberView(_Doc):
    id: str
    name: str
    status: Literal["active", "suspended"]
    endpoint: str
    services_endpoint: str | None
    lead_contacts: list[LeadContactView]


class MemberList(_Doc):
    federation: str
    version: int
    members: list[MemberView]


_MODELS: list[type[BaseModel]] = [
    Episode,
    EventBody,
    ConsentInput,
    WithdrawalInput,
    CheckInput,
    Error,
    FormAnswer,
    SearchResult,
    ConsentRecorded,
    ConsentWithdrawn,
    ConsentDecision,
    AuditVerification,
    Register,
    ChildRegister,
    Overdue,
    QualityReport,
    RequestInput,
    Decision,
    RequestView,
    RequestQueue,
    HeldDisclosure,
    HeldDisclosures,
    OfferInput,
    AcceptInput,
    TransferState,
    Transfers,
    NotificationList,
    ServicePage,
    MemberList,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(model)}}}


def _either(*models: type[BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"anyOf": [_ref(m) for m in models]}}}}


def _responses(ok: tuple[str, dict[str, Any]], *errors: int) -> dict[str, Any]:
    """Success, the operation's own errors, and those any operation can answer: 401 and 403
    (token, scope), 503 (`busy`: no database connection came within the wait; `peer_unavailable`:
    federation metadata expired, for any call that needs the members)."""
    status, body = ok
    described = {status: {"description": "success", **body}}
    for code in sorted({401, 403, 503, *errors}):
        described[str(code)] = {"description": "error", **_json(Error)}
    return described


_EPISODE_ID = {
    "name": "episode_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


# `?format=eha-json`: the local EHA family document (adapters/eha_json), described by what every
# document it writes holds. The writer reproduces a document it read, so only what its reader
# requires is always there: an authority, a status, and a family whose members each have a person
# ref and a role. A national Episode has none of these (home_authority, state, child instead).
_EHA_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "description": "?format=eha-json: the EHA family document",
    "required": ["authority", "status", "family"],
    "properties": {
        "authority": {"type": "string"},
        "status": {"type": "string"},
        "family": {
            "type": "object",
            "required": ["members"],
            "properties": {
                "members": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["personRef", "role"],
                        "properties": {
                            "personRef": {"type": "string"},
                            "role": {"type": "string"},
                        },
                    },
                }
            },
        },
    },
}


def _operation(summary: str, scope: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    if "requestBody" in extra and "413" not in responses:  # a body over `max_body_bytes`
        responses = {**responses, "413": {"description": "error", **_json(Error)}}
    return {"summary": summary, "security": [{"client": [scope]}], "responses": responses, **extra}


# With `?format=`: how many of the episode's values the document does not give back
# (adapters.write_checked); the national formats give back every one.
_FIDELITY = {
    "CAF-Fidelity": {
        "description": "with ?format=: values not carried and changed, as `not_carried=N, "
        "changed=M` (and `not_readable=1` when the format's reader refuses the document)",
        "schema": {"type": "string"},
    }
}


@cache
def openapi_document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    formats = [*adapter_names()]
    form_body = {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("application/xml", "application/json", "text/csv")
        },
    }
    episode_out = {
        "content": {
            # National JSON, or with `?format=eha-json` the local EHA family document (JSON too).
            "application/json": {
                "schema": {
                    "anyOf": [
                        _ref(Episode),
                        _EHA_DOCUMENT,
                    ]
                }
            },
            "application/xml": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        }
    }
    paths: dict[str, Any] = {
        "/forms": {
            "post": _operation(
                "Submit a local or national CAF document; episodes are stored",
                "episodes:write",
                {
                    **_responses(("201", _json(FormAnswer)), 409, 413, 415),
                    "422": {
                        "description": "invalid document, or no valid record in it",
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [_ref(Error), _ref(FormAnswer)]}
                            }
                        },
                    },
                },
                parameters=[
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["auto", *formats]},
                    },
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                ],
                requestBody=form_body,
            )
        },
        "/episodes": {
            "get": _operation(
                "Find episodes by NHS number, UPN, or names and date of birth",
                "episodes:read",
                _responses(("200", _json(SearchResult)), 400, 422),
                parameters=_CHILD_KEYS,
            )
        },
        "/episodes/{episode_id}": {
            "get": _operation(
                "Read an episode: JSON, national XML (Accept), or a local format (?format=)",
                "episodes:read",
                _responses(("200", {**episode_out, "headers": _FIDELITY}), 404, 415, 422),
                parameters=[
                    _EPISODE_ID,
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": formats},
                    },
                ],
            )
        },
        "/episodes/{episode_id}/events": {
            "post": _operation(
                "Record a review, a TAC member, a new lead professional or the closure",
                "episodes:write",
                _responses(("200", _json(Episode)), 404, 409, 412, 422),
                parameters=[
                    _EPISODE_ID,
                    {
                        "name": "If-Match",
                        "in": "header",
                        "description": "the ETag of the revision the change is made on",
                        "schema": {"type": "string"},
                    },
                ],
                requestBody={"required": True, **_json(EventBody)},
            )
        },
        "/episodes/{episode_id}/consents": {
            "post": _operation(
                "Record a consent statement",
                "consents:write",
                _responses(("201", _json(ConsentRecorded)), 404, 409, 422),
                parameters=[_EPISODE_ID],
                requestBody={"required": True, **_json(ConsentInput)},
            )
        },
        "/episodes/{episode_id}/consents/{consent_id}/withdraw": {
            "post": _operation(
                "Withdraw a consent statement (stops future sharing at once)",
                "consents:write",
                _responses(("200", _json(ConsentWithdrawn)), 404, 409, 422),
                parameters=[
                    _EPISODE_ID,
                    {
                        "name": "consent_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                requestBody={"required": False, **_json(WithdrawalInput)},
            )
        },
        "/episodes/{episode_id}/consent-check": {
            "post": _operation(
                "Would this recipient be permitted, for this purpose and these sections?",
                "episodes:read",
                _responses(("200", _json(ConsentDecision)), 404, 422),
                parameters=[_EPISODE_ID],
                requestBody={"required": True, **_json(CheckInput)},
            )
        },
        "/overdue": {
            "get": _operation(
                "What the time rules say is due (first TAC meeting, reviews, re-assessment,"
                " archiving, purging), on or before as_of plus ahead_days, earliest first",
                "episodes:read",
                _responses(("200", _json(Overdue)), 400),
                parameters=[
                    _query("as_of", {"type": "string", "format": "date"}, "default: today, London"),
                    _query(
                        "ahead_days",
                        {"type": "integer", "minimum": 0, "maximum": MAX_AHEAD_DAYS},
                        "also list what falls due this many days after as_of (default 0)",
                    ),
                    {
                        "name": "rule",
                        "in": "query",
                        "description": "only these rules (repeat the parameter); default: all",
                        "schema": {
                            "type": "array",
                            "items": {"type": "string", "enum": [r.value for r in TimeRule]},
                        },
                        "style": "form",
                        "explode": True,
                    },
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LISTED_DUE},
                        "items at most (default 1000)",
                    ),
                ],
            )
        },
        "/reports/quality": {
            "get": _operation(
                "A period's CAF figures (the minimum data set of standard 000 E, CAFs per 10,000"
                " children as report 004 counts them) and the closed CAFs drawn for audit (1 in"
                " 10); counts and episode ids only",
                "audit:read",
                _responses(("200", _json(QualityReport)), 400),
                parameters=[
                    _query(
                        "from",
                        {"type": "string", "format": "date"},
                        "first day (default: a year before to, plus a day)",
                    ),
                    _query("to", {"type": "string", "format": "date"}, "last day (default: today)"),
                    _query(
                        "children",
                        {"type": "integer", "minimum": 1, "maximum": MAX_CHILDREN},
                        "the borough's number of children aged 0 to 17, for the rate",
                    ),
                ],
            )
        },
        "/audit/verify": {
            "get": _operation(
                "Verify the audit chain and its signed checkpoints",
                "audit:read",
                _responses(("200", _json(AuditVerification))),
            )
        },
        "/register": {
            "get": _operation(
                "The sharing register of one episode (both sides); of one child, named by match"
                " keys as for /episodes (subject access: the episodes held here and those"
                " received); or what one of this borough's practitioners received (name one)",
                "register:read",
                _responses(("200", _either(Register, ChildRegister)), 400, 422),
                parameters=[
                    {
                        "name": "episode",
                        "in": "query",
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    {
                        "name": "practitioner",
                        "in": "query",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                    *_CHILD_KEYS,
                ],
            )
        },
    }
    paths.update(_federation_paths())
    paths.update(_directory_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CAF Exchange node API",
            "version": "1",
            "description": "For borough case systems: forms in, episodes, consent, audit, register.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "client": {
                    "type": "oauth2",
                    "description": "client credentials, client authentication by private_key_jwt",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/oauth/token",
                            "scopes": {scope: scope for scope in sorted(SCOPES)},
                        }
                    },
                }
            },
        },
    }


_REQUEST_ID = {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}
_OFFER_ID = {"name": "offer_id", "in": "path", "required": True, "schema": {"type": "string"}}
_APPROVAL_ID = {
    "name": "approval_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


def _federation_paths() -> dict[str, Any]:
    """Cross-borough requests and transfers (issue 6): 404 where the node is in no federation."""
    return {
        "/requests": {
            "post": _operation(
                "Raise a practitioner's cross-borough request (verified by a lead CAF contact)",
                "requests:write",
                _responses(("201", _json(RequestView)), 409, 422, 404),
                requestBody={"required": True, **_json(RequestInput)},
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "description": "the same request again returns the first, as it stands",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }
                ],
            ),
            "get": _operation(
                "Requests waiting for a lead CAF contact of this borough",
                "requests:decide",
                _responses(("200", _json(RequestQueue)), 404),
            ),
        },
        "/requests/{request_id}": {
            "get": _operation(
                "A request's state and, once answered, the answer (its content to the system"
                " that raised it only)",
                "requests:write",
                _responses(("200", _json(RequestView)), 404),
                parameters=[_REQUEST_ID],
            )
        },
        "/requests/{request_id}/decision": {
            "post": _operation(
                "A lead CAF contact approves or rejects (an override needs a second one)",
                "requests:decide",
                _responses(("200", _json(RequestView)), 404, 409, 422),
                parameters=[_REQUEST_ID],
                requestBody={"required": True, **_json(Decision)},
            )
        },
        "/disclosure-approvals": {
            "get": _operation(
                "Disclosures other members asked for, waiting for a lead CAF contact here",
                "requests:decide",
                _responses(("200", _json(HeldDisclosures)), 404),
            )
        },
        "/disclosure-approvals/{approval_id}/decision": {
            "post": _operation(
                "A lead CAF contact of this borough approves (consent is decided again) or rejects",
                "requests:decide",
                _responses(("200", _json(HeldDisclosure)), 404, 409, 422),
                parameters=[_APPROVAL_ID],
                requestBody={"required": True, **_json(Decision)},
            )
        },
        "/episodes/{episode_id}/transfer": {
            "post": _operation(
                "A lead CAF contact offers the episode to another authority (the child has moved)",
                "requests:decide",
                _responses(("201", _json(TransferState)), 404, 409, 422),
                parameters=[_EPISODE_ID],
                requestBody={"required": True, **_json(OfferInput)},
            )
        },
        "/transfers": {
            "get": _operation(
                "Transfer offers: made to this authority (in) or by it (out)",
                "episodes:read",
                _responses(("200", _json(Transfers)), 400, 404),
                parameters=[
                    _query(
                        "direction",
                        {"type": "string", "enum": ["in", "out"], "default": "in"},
                        "offers made to this borough (in) or by it (out)",
                    ),
                    _query(
                        "state",
                        {"type": "string", "enum": list(LISTED_STATES)},
                        "in this state only (open: offered or accepted)",
                    ),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LISTED,
                            "default": MAX_LISTED,
                        },
                        "the newest this many, oldest first (older ones: narrow by state)",
                    ),
                ],
            )
        },
        "/notifications": {
            "get": _operation(
                "What holders told this borough: a TAC member added, a new lead professional",
                "episodes:read",
                _responses(("200", _json(NotificationList)), 400, 404),
                parameters=[
                    _query("episode", {"type": "string", "format": "uuid"}, "one episode's only"),
                    _query(
                        "since",
                        {"type": "string", "format": "date-time"},
                        "received after this moment (with a time zone); give since_id too, or"
                        " one received at the same moment as the last listed can be missed",
                    ),
                    _query(
                        "since_id",
                        {"type": "string", "format": "uuid"},
                        "with since: the id of the last one received (the greatest received_at,"
                        " id listed); those received at that same moment after it are listed too",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500},
                        "at most this many (default 100), oldest first",
                    ),
                ],
            )
        },
        "/transfers/{offer_id}/accept": {
            "post": _operation(
                "Accept an offer, naming the new lead professional",
                "requests:decide",
                _responses(("200", _json(TransferState)), 404, 409, 422),
                parameters=[_OFFER_ID],
                requestBody={"required": True, **_json(AcceptInput)},
            )
        },
        "/transfers/{offer_id}/withdraw": {
            "post": _operation(
                "The holder withdraws an offer not yet answered (the episode can be offered again)",
                "requests:decide",
                _responses(("200", _json(TransferState)), 404, 409, 422),
                parameters=[_OFFER_ID],
                requestBody={"required": True, **_json(CloseInput)},
            )
        },
        "/transfers/{offer_id}/decline": {
            "post": _operation(
                "The receiver declines an offer it has not accepted, or releases one past due",
                "requests:decide",
                _responses(("200", _json(TransferState)), 404, 409, 422),
                parameters=[_OFFER_ID],
                requestBody={"required": True, **_json(CloseInput)},
            )
        },
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_GSS = {"type": "string", "pattern": "^[EWSN][0-9]{8}$"}


def _directory_paths() -> dict[str, Any]:
    """The service directory and the member directory (issue 7)."""
    text = {"type": "string", "maxLength": 200}
    age = {"type": "number", "minimum": 0, "maximum": 150}
    search = [
        _query("text", text, "words of the name, description, provider or needs"),
        _query("search", text, "the Open Referral UK name for text"),
        _query("taxonomy_term_id", {"type": "string"}, "a taxonomy term id (or term code)"),
        _query(
            "minimum_age",
            age,
            "Open Referral UK: services whose minimum age is at least this (none stated: 0)",
        ),
        _query(
            "maximum_age",
            age,
            "Open Referral UK: services whose maximum age is at most this (none stated: no limit)",
        ),
        _query("age", age, "services a child of this age may attend (minimum <= age <= maximum)"),
        _query("postcode", {"type": "string"}, "a London postcode or district: distance from it"),
        _query("proximity", {"type": "number"}, "metres from the postcode or lat/lon, at most"),
        _query("lat", {"type": "number"}, "latitude (WGS84), with lon"),
        _query("lon", {"type": "number"}, "longitude (WGS84), with lat"),
        _query("authority", _GSS, "only services run by this authority"),
        _query(
            "eligible_for",
            {"type": "string"},
            "residence:GSS,school:GSS,gp:GSS,provision:GSS (any of them): may this child use each"
            " service, and why",
        ),
        _query(
            "scope",
            {"type": "string", "enum": ["local", "federation"]},
            "federation: ask every member",
        ),
        _query("page", {"type": "integer"}, "page number, from 1"),
        _query("per_page", {"type": "integer"}, "services per page, 1 to 100"),
    ]
    return {
        "/directory/services": {
            "get": _operation(
                "Search services (Open Referral UK page), here or across the federation",
                "directory:read",
                _responses(("200", _json(ServicePage)), 400, 503),
                parameters=search,
            )
        },
        "/directory/contacts": {
            "get": _operation(
                "Members, their endpoints and status, and their lead CAF contacts",
                "directory:read",
                _responses(("200", _json(MemberList)), 400, 404, 503),
                parameters=[_query("authority", {"type": "string"}, "one member's GSS code")],
            )
        },
    }


@needs(PUBLIC)
async def serve_openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())
