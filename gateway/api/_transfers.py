"""Transfers between authorities (DESIGN 3.6), from the borough systems' side."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from directory.members import MemberError
from schemas import Practitioner

from ..audit import Outcome
from ..errors import BadRequest, FederationRefused, Forbidden, GatewayError, NotFound
from ..federation.transfer import (
    CLOSING,
    OPEN_STATES,
    STATES,
    ConsentNotGiven,
    Direction,
    TransferWorkflow,
)
from ..keys import AUDIT, MEMBERS, SETTINGS, TRANSFERS
from ._auth import needs
from ._common import draft, episode_id_of, json_body, safe_code

__all__ = [
    "accept_transfer",
    "decline_transfer",
    "list_transfers",
    "offer_transfer",
    "withdraw_transfer",
]


class OfferInput(BaseModel):
    """Offering a child's episode to another authority is a lead CAF contact's decision, as taking
    it back (withdrawing) or accepting one is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    to: str = Field(pattern=r"^[ENSW][0-9]{8}$")
    lead_contact_id: str = Field(min_length=1, max_length=100)


class AcceptInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    lead_contact_id: str = Field(min_length=1, max_length=100)
    lead_professional: Practitioner


def _workflow(request: web.Request) -> TransferWorkflow:
    workflow = request.config_dict.get(TRANSFERS)
    if workflow is None:
        raise NotFound("this node is not a member of a federation")
    return workflow


@asynccontextmanager
async def _refusals(
    request: web.Request,
    action: str,
    *,
    episode_id: str | None = None,
    offer_id: str | None = None,
    direction: Direction = "in",
    **details: str,
) -> AsyncIterator[None]:
    """Record a refused or failed call (its own transaction: the call's one rolled back), with the
    offer and its episode when they are known, and the consent rule that refused it."""
    try:
        yield
    except GatewayError as error:
        if offer_id is not None:
            details["offer"] = safe_code(offer_id)
            if episode_id is None and TRANSFERS in request.config_dict:
                async with request.config_dict[AUDIT].engine.connect() as connection:
                    episode_id = await _workflow(request).episode_of(
                        connection, offer_id, direction
                    )
        if isinstance(error, ConsentNotGiven):
            details["rule"] = error.rule
        outcome = Outcome.REFUSED if error.status in (403, 409) else Outcome.FAILED
        refused = error.refused_action or action
        entry = draft(request, refused, episode_id, outcome, reason=error.wire_code, **details)
        await request.config_dict[AUDIT].record(entry)
        raise


def _an_offer_id(offer_id: str) -> None:
    """Offer ids are UUIDs: anything else names no offer, and is not taken to the database (a NUL
    in it failed there, a 500 that recorded nothing)."""
    try:
        uuid.UUID(offer_id)
    except ValueError:
        raise NotFound("no such transfer offer") from None


def _lead_contact(request: web.Request, lead_contact_id: str, action: str) -> None:
    me = request.config_dict[SETTINGS].member_id
    if not request.config_dict[MEMBERS]().is_lead_contact(me, lead_contact_id):
        raise Forbidden(f"only a listed lead CAF contact of this borough can {action}")


@needs("requests:decide")
async def offer_transfer(request: web.Request) -> web.Response:
    episode_id = str(episode_id_of(request))
    body = await json_body(request, OfferInput)
    workflow, audit = _workflow(request), request.config_dict[AUDIT]
    async with _refusals(request, "transfer.offer", episode_id=episode_id, to=body.to):
        _lead_contact(request, body.lead_contact_id, "offer a transfer")
        try:  # only to an active member: a suspended one could never answer
            request.config_dict[MEMBERS]().active(body.to)
        except MemberError as error:
            raise FederationRefused(str(error), code=error.code) from None
        async with audit.transaction() as connection:
            offer_id = await workflow.offer(connection, episode_id, body.to, body.lead_contact_id)
            await audit.append(
                connection,
                draft(
                    request,
                    "transfer.offer",
                    episode_id,
                    offer=offer_id,
                    to=body.to,
                    lead=body.lead_contact_id,
                ),
            )
    return web.json_response({"offer_id": offer_id, "state": "offered"}, status=201)


MAX_LISTED = 1_000
# `?state=`: one state, or `open` for those not yet committed nor closed.
LISTED_STATES = {"open": OPEN_STATES, **{state: (state,) for state in STATES}}


@needs("episodes:read")
async def list_transfers(request: web.Request) -> web.Response:
    """`?direction=in` (the default: offers to this borough) or `out` (offers it made), `?state=`,
    `?limit=` (the newest that many, default and at most `MAX_LISTED`), oldest first."""
    workflow, audit = _workflow(request), request.config_dict[AUDIT]
    direction, state = request.query.get("direction", "in"), request.query.get("state")
    if direction not in ("in", "out"):
        raise BadRequest("direction is in or out")
    if state is not None and state not in LISTED_STATES:
        raise BadRequest(f"state is one of {', '.join(LISTED_STATES)}")
    try:
        limit = int(request.query.get("limit", MAX_LISTED))
    except ValueError:
        raise BadRequest("limit is a number") from None
    if not 1 <= limit <= MAX_LISTED:
        raise BadRequest(f"limit is between 1 and {MAX_LISTED}")
    async with audit.engine.connect() as connection:
        offers = await workflow.listed(
            connection,
            "in" if direction == "in" else "out",
            states=None if state is None else LISTED_STATES[state],
            limit=limit,
        )
    return web.json_response({"transfers": offers})


@needs("requests:decide")
async def accept_transfer(request: web.Request) -> web.Response:
    offer_id = request.match_info["offer_id"]
    body = await json_body(request, AcceptInput)
    workflow, audit = _workflow(request), request.config_dict[AUDIT]
    async with _refusals(request, "transfer.accept", offer_id=offer_id):
        _an_offer_id(offer_id)
        _lead_contact(request, body.lead_contact_id, "accept")
        async with audit.transaction() as connection:
            episode_id = await workflow.accept(
                connection, offer_id, body.lead_professional, body.lead_contact_id
            )
            await audit.append(
                connection,
                draft(
                    request,
                    "transfer.accept",
                    episode_id,
                    offer=offer_id,
                    lead=body.lead_contact_id,
                ),
            )
    return web.json_response({"offer_id": offer_id, "state": "accepted"})


class CloseInput(BaseModel):
    """Who closes an offer unmoved, and why: a code (it is listed to the other member and
    audited), never free text that could carry personal data."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lead_contact_id: str = Field(min_length=1, max_length=100)
    reason: str = Field("unspecified", pattern=r"^[a-z][a-z0-9_]{0,63}$")


async def _close(request: web.Request, direction: Direction) -> web.Response:
    action = CLOSING[direction][0]
    offer_id = request.match_info["offer_id"]
    body = await json_body(request, CloseInput)
    workflow, audit = _workflow(request), request.config_dict[AUDIT]
    async with _refusals(request, f"transfer.{action}", offer_id=offer_id, direction=direction):
        _an_offer_id(offer_id)
        _lead_contact(request, body.lead_contact_id, action)
        async with audit.transaction() as connection:
            closed = await workflow.close(connection, offer_id, direction, body.reason)
            await audit.append(
                connection,
                draft(
                    request,
                    f"transfer.{closed.action}",
                    closed.episode_id,
                    reason=body.reason,
                    offer=offer_id,
                    lead=body.lead_contact_id,
                ),
            )
    return web.json_response({"offer_id": offer_id, "state": closed.state, "reason": body.reason})


@needs("requests:decide")
async def withdraw_transfer(request: web.Request) -> web.Response:
    """The holder takes back an offer its receiver has not answered."""
    return await _close(request, "out")


@needs("requests:decide")
async def decline_transfer(request: web.Request) -> web.Response:
    """The receiver turns down an offer it has not accepted, or releases an accepted one whose
    episode has not come by its due date."""
    return await _close(request, "in")
