"""Disclosures other members asked for that wait for a lead CAF contact of this borough (the
holder's side of DESIGN 3.4 `202 pending`): the queue, and the decision."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ..errors import NotFound
from ..federation.approvals import DisclosureApprovals, PendingDisclosure
from ..federation.practitioner import Decision
from ..keys import AUDIT, DISCLOSURE_APPROVALS, REQUEST_ID
from ._auth import CALLER, needs
from ._common import audited_refusals, draft, json_body

__all__ = ["decide_disclosure", "waiting_disclosures"]


def _approvals(request: web.Request) -> DisclosureApprovals:
    service = request.config_dict.get(DISCLOSURE_APPROVALS)
    if service is None:
        raise NotFound("this node is not a member of a federation")
    return service


def _public(held: PendingDisclosure) -> dict[str, Any]:
    return {
        "approval_id": held.id,
        "requester": held.requester,
        "practitioner_role": held.practitioner_role,
        "agency_type": held.agency_type,
        "purpose": held.purpose,
        "reason": held.reason,
        "sections": held.sections,
        "episode_id": held.episode_id,
        "received_at": held.received_at.isoformat(),
        "state": held.state,
        "override": held.override,
        "outcome": held.outcome,
    }


def _approval_id(request: web.Request) -> str:
    """The `{approval_id}` of the route: the UUID the node gave the hold; anything else names none."""
    try:
        return str(uuid.UUID(request.match_info["approval_id"]))
    except ValueError:
        raise NotFound("no such disclosure approval") from None


@needs("requests:decide")
async def waiting_disclosures(request: web.Request) -> web.Response:
    """Held disclosures, each with the practitioner's role, purpose and reason: the read is audited
    (how many, never whom)."""
    approvals, audit = _approvals(request), request.config_dict[AUDIT]
    async with audit.transaction() as connection:
        held = await approvals.waiting(connection)
        await audit.append(
            connection, draft(request, "disclosure_approval.list", None, results=len(held))
        )
    return web.json_response({"approvals": [_public(h) for h in held]})


@needs("requests:decide")
async def decide_disclosure(request: web.Request) -> web.Response:
    approvals = _approvals(request)
    async with audited_refusals(request, "disclosure_approval.decide", None):
        approval_id = _approval_id(request)  # no UUID: no such hold, recorded as refused
    body = await json_body(request, Decision)
    held = await approvals.decide(
        approval_id,
        lead_contact_id=body.lead_contact_id,
        decision=body.decision,
        note=body.note,
        request_id=request[REQUEST_ID],
        via=f"client:{request[CALLER].client_id}",
    )
    return web.json_response(_public(held))
