"""The queue (practitioners' requests awaiting a lead contact's verification) and the overrides page
(public-interest overrides awaiting a second, different lead contact). Deciding is one form: a note
and an Approve or a Reject button; the domain (`PractitionerRequests.decide`) enforces who may."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from directory.members import MemberDirectory

from ..audit import Outcome
from ..errors import GatewayError, NotFound, SchemaViolation
from ..federation.attestation import same_id
from ..federation.practitioner import Decision, RequestRecord
from ..keys import DISCLOSURE_APPROVALS, MEMBERS, REQUEST_ID, REQUESTS, SETTINGS
from ..storage import aware_utc
from ._web import CONSOLE_PATH, LEAD, audit, audit_view, render, uuid_of

__all__ = ["decide", "decide_disclosure", "overrides_page", "queue_page"]

_WAITING = ("awaiting_verification", "awaiting_second_approval")


def _waited(since: dt.datetime, now: dt.datetime) -> str:
    minutes = max(0, int((now - aware_utc(since)).total_seconds() // 60))
    if minutes < 1:
        return "less than a minute"
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''} {minutes} min"
    return f"{hours // 24} days"


def _member_name(directory: MemberDirectory, gss: str) -> str:
    member = directory.member(gss)
    return f"{member.name} ({gss})" if member is not None else gss


def request_view(
    record: RequestRecord, directory: MemberDirectory, lead_id: str, now: dt.datetime
) -> dict[str, Any]:
    """What a lead contact needs to decide, and whether they may."""
    given = record.document["input"]
    practitioner = given["practitioner"]
    approvals = [d for d in record.document.get("decisions", []) if d["decision"] == "approve"]
    cannot = None
    if same_id(practitioner["id"], lead_id):  # as the domain compares them
        cannot = "You raised this request: another lead CAF contact must decide it."
    elif any(same_id(d["by"], lead_id) for d in approvals):
        cannot = "You gave the first approval: a second, different lead CAF contact must approve."
    answer = record.document.get("answer") or {}
    override = given.get("override")
    if override is not None:
        ends = aware_utc(dt.datetime.fromisoformat(override["expires_at"]))
        override = {**override, "expires_at": ends}
    return {
        "id": record.id,
        "kind": record.kind.replace("_", " "),
        "state": record.state,
        "target": _member_name(directory, record.target),
        "practitioner": practitioner,
        "purpose": given["purpose"].replace("_", " "),
        "reason": given["reason"],
        "sections": given.get("sections"),
        # Whom it is about: the lead contact verifies the request for this child, not in general.
        "child": given.get("child"),
        "episode_ref": given.get("episode_ref"),
        "override": override,
        "waited": _waited(record.created_at, now),
        "created_at": record.created_at,
        "decisions": record.document.get("decisions", []),
        "cannot": cannot,
        "answer": answer,
        "error": record.document.get("error"),
    }


async def _views(request: web.Request, records: list[RequestRecord]) -> list[dict[str, Any]]:
    directory = request.config_dict[MEMBERS]()
    now = dt.datetime.now(dt.UTC)
    return [request_view(r, directory, request[LEAD].id, now) for r in records]


async def _decided(request: web.Request) -> dict[str, Any] | None:
    """The request just decided (POST, redirect, GET): its outcome, federated answer included."""
    decided = request.query.get("decided", "")
    if not decided or len(decided) > 36:
        return None
    try:
        record = await request.config_dict[REQUESTS].get(str(uuid.UUID(decided)))
    except (ValueError, NotFound):  # not an id: names nothing (and never reaches the database)
        return None
    return (await _views(request, [record]))[0]


async def _disclosure_decided(request: web.Request) -> dict[str, Any] | None:
    """The held disclosure just decided, looked up by its id: the page shows the stored outcome,
    never text from the address (a crafted link cannot put words in a success box)."""
    approvals = request.config_dict.get(DISCLOSURE_APPROVALS)
    wanted = request.query.get("disclosure", "")
    if approvals is None or not wanted or len(wanted) > 36:
        return None
    try:
        decided = await approvals.get(str(uuid.UUID(wanted)))
    except (ValueError, NotFound):
        return None
    if decided.state == "pending":
        return None
    return {"state": decided.state, "outcome": decided.outcome}


async def _holder_waiting(request: web.Request) -> list[dict[str, Any]] | None:
    """Other boroughs' disclosures held for our approval; None when this node holds none back."""
    approvals = request.config_dict.get(DISCLOSURE_APPROVALS)
    if approvals is None or request.config_dict[SETTINGS].disclosure_approval == "never":
        return None
    directory = request.config_dict[MEMBERS]()
    return [
        {**dataclasses.asdict(p), "requester": _member_name(directory, p.requester)}
        for p in await approvals.waiting()
    ]


def _shown(*groups: list[dict[str, Any]] | None) -> tuple[str, ...]:
    """The ids of the requests a page shows, once each: its audit entry names them, so a subject
    access request finds every view of a child's name, date of birth and other details."""
    return tuple(dict.fromkeys(item["id"] for group in groups for item in group or []))


async def queue_page(request: web.Request) -> web.Response:
    requests = request.config_dict[REQUESTS]
    waiting = await _views(
        request, [r for r in await requests.waiting() if r.state == "awaiting_verification"]
    )
    holder_waiting = await _holder_waiting(request)
    recent = await _views(request, await requests.recent(8))
    decided = await _decided(request)
    await audit_view(
        request,
        "queue",
        {
            "requests": _shown(waiting, recent, [decided] if decided else None),
            "episodes": tuple(dict.fromkeys(p["episode_id"] for p in holder_waiting or [])),
        },
        results=len(waiting),
        held=len(holder_waiting or []),
    )
    return render(
        request,
        "queue.html",
        {
            "title": "Requests to verify",
            "waiting": waiting,
            "holder_waiting": holder_waiting,
            "disclosed": await _disclosure_decided(request),
            "recent": recent,
            "decided": decided,
        },
    )


async def overrides_page(request: web.Request) -> web.Response:
    requests = request.config_dict[REQUESTS]
    waiting = await _views(
        request, [r for r in await requests.waiting() if r.state == "awaiting_second_approval"]
    )
    decided = await _decided(request)
    await audit_view(
        request,
        "overrides",
        {"requests": _shown(waiting, [decided] if decided else None)},
        results=len(waiting),
    )
    return render(
        request,
        "overrides.html",
        {
            "title": "Overrides awaiting a second approver",
            "waiting": waiting,
            "decided": decided,
        },
    )


def _decision(form: Any, lead_id: str) -> Decision:
    """The decision form, read by the domain's own model (the API reads the same one)."""
    try:
        return Decision(
            decision=form.get("decision"),
            lead_contact_id=lead_id,
            note=str(form.get("note", "")).strip() or None,
        )
    except ValidationError:
        raise SchemaViolation(
            "choose Approve or Reject; a rejection needs a note saying why; a note is at most "
            "2000 characters"
        ) from None


async def decide(request: web.Request) -> web.Response:
    request_id = uuid_of(request, "request_id")
    form = await request.post()
    back = "overrides" if form.get("back") == "overrides" else "queue"
    requests = request.config_dict[REQUESTS]
    try:
        decision = _decision(form, request[LEAD].id)
        record = await requests.get(request_id)
        if record.state not in _WAITING:
            raise NotFound("no such request awaiting a decision")
        await requests.decide(
            request_id, decision, request[REQUEST_ID], via=f"console:{request[LEAD].id}"
        )
    except GatewayError as error:
        await audit(
            request,
            "console.decide",
            request_id,
            Outcome.REFUSED,
            reason=error.wire_code,
        )
        raise
    raise web.HTTPSeeOther(f"{CONSOLE_PATH}/{back}?decided={request_id}")


async def decide_disclosure(request: web.Request) -> web.Response:
    """Another borough's disclosure, held by our policy: release it or refuse it."""
    approval_id = uuid_of(request, "approval_id")
    form = await request.post()
    approvals = request.config_dict.get(DISCLOSURE_APPROVALS)
    if approvals is None:
        raise NotFound("this node holds no disclosures for approval")
    try:
        decision = _decision(form, request[LEAD].id)
        await approvals.decide(
            approval_id,
            lead_contact_id=decision.lead_contact_id,
            decision=decision.decision,
            note=decision.note,
            request_id=request[REQUEST_ID],
            via=f"console:{request[LEAD].id}",
        )
    except GatewayError as error:
        await audit(request, "console.decide", approval_id, Outcome.REFUSED, reason=error.wire_code)
        raise
    raise web.HTTPSeeOther(f"{CONSOLE_PATH}/queue?disclosure={approval_id}")
