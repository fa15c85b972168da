"""Cross-borough requests from practitioners (DESIGN 3.3), on their home node: raised by the borough
system, verified by a lead CAF contact of this borough, then sent to the target member."""

from __future__ import annotations

import uuid

from aiohttp import web

from directory.members import MemberError
from schemas import Problem

from ..errors import FederationRefused, NotFound, SchemaViolation
from ..federation.practitioner import Decision, PractitionerRequests, RequestInput
from ..keys import AUDIT, MEMBERS, REQUEST_ID, REQUESTS
from ._auth import CALLER, needs
from ._common import audited_refusals, draft, json_body

__all__ = ["decide_request", "get_request", "post_request", "waiting_requests"]


def _requests(request: web.Request) -> PractitionerRequests:
    service = request.config_dict.get(REQUESTS)
    if service is None:
        raise NotFound("this node is not a member of a federation")
    return service


def _an_active_member(request: web.Request, target: str) -> None:
    """Only to an active member of the signed metadata: another could never be answered (and
    would fail only after a lead contact approved it)."""
    try:
        request.config_dict[MEMBERS]().active(target)
    except MemberError as error:
        raise FederationRefused(
            str(error),  # GSS codes only
            code=error.code,
            problems=[Problem(("target_authority",), error.code, error.message)],
        ) from None


@needs("requests:write")
async def post_request(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise SchemaViolation("Idempotency-Key must be 1 to 200 characters")
    body = await json_body(request, RequestInput)
    service = _requests(request)
    async with audited_refusals(request, "request.create", None):
        _an_active_member(request, body.target_authority)
        record = await service.create(
            request[CALLER].client_id, body, request[REQUEST_ID], idempotency_key=key
        )
    return web.json_response(record.public(), status=201)


def _request_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["request_id"]))
    except ValueError:
        raise NotFound("no such request") from None


@needs("requests:write")
async def get_request(request: web.Request) -> web.Response:
    """The system that raised a request reads it, with its answer (disclosed content). Another
    system holding `requests:decide` too (the lead contacts', who see every request in their
    queue) reads the decision view: no content, no holder's contact details. A system with
    `requests:decide` alone reads the queue (`GET /requests`). Each read is audited
    (`request.read`), as a read of an episode is."""
    caller, service = request[CALLER], _requests(request)
    request_id, audit = _request_id(request), request.config_dict[AUDIT]
    async with (
        audited_refusals(request, "request.read", request_id),
        audit.transaction() as connection,
    ):
        record = await service.get(request_id, connection)
        raiser = record.document["client_id"] == caller.client_id
        if not raiser and "requests:decide" not in caller.scopes:
            raise NotFound("no such request")
        await audit.append(
            connection, draft(request, "request.read", record.id, state=record.state)
        )
    return web.json_response(record.public() if raiser else record.decided())


@needs("requests:decide")
async def decide_request(request: web.Request) -> web.Response:
    """The decision, and what became of the request: in full to the system that raised it; to any
    other, the decision view (no disclosed content: that is read, audited, through GET)."""
    async with audited_refusals(request, "request.decide", None):
        request_id = _request_id(request)  # no UUID: no such request, recorded as refused
    body = await json_body(request, Decision)
    client_id = request[CALLER].client_id
    record = await _requests(request).decide(  # audits its own refusals
        request_id, body, request[REQUEST_ID], via=f"client:{client_id}"
    )
    raiser = record.document["client_id"] == client_id
    return web.json_response(record.public() if raiser else record.decided())


@needs("requests:decide")
async def waiting_requests(request: web.Request) -> web.Response:
    """The queue: each request with the child's match keys or episode and any override's
    justification, so its read is audited (how many, never whom)."""
    service, audit = _requests(request), request.config_dict[AUDIT]
    async with audit.transaction() as connection:
        records = await service.waiting(connection)
        await audit.append(connection, draft(request, "request.list", None, results=len(records)))
    return web.json_response({"requests": [r.for_decision() for r in records]})
