"""Cross-borough requests from practitioners (DESIGN 3.3), on their home node: raised by the borough
system, verified by a lead CAF contact of this borough, then sent to the target member."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..errors import NotFound, SchemaViolation
from ..federation.practitioner import Decision, PractitionerRequests, RequestInput
from ..keys import REQUEST_ID, REQUESTS
from ._auth import CALLER, needs
from ._common import json_body

__all__ = ["decide_request", "get_request", "post_request", "waiting_requests"]


def _requests(request: web.Request) -> PractitionerRequests:
    service = request.config_dict.get(REQUESTS)
    if service is None:
        raise NotFound("this node is not a member of a federation")
    return service


@needs("requests:write")
async def post_request(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise SchemaViolation("Idempotency-Key must be 1 to 200 characters")
    body = await json_body(request, RequestInput)
    record = await _requests(request).create(
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
    """The system that raised a request reads it (its answer is disclosed content); so may another
    system holding `requests:decide` too (the lead contacts', who see every request in their
    queue). A system with `requests:decide` alone reads the queue (`GET /requests`)."""
    caller = request[CALLER]
    record = await _requests(request).get(_request_id(request))
    if record.document["client_id"] != caller.client_id and "requests:decide" not in caller.scopes:
        raise NotFound("no such request")
    return web.json_response(record.public())


@needs("requests:decide")
async def decide_request(request: web.Request) -> web.Response:
    request_id = _request_id(request)
    body = await json_body(request, Decision)
    record = await _requests(request).decide(  # audits its own refusals
        request_id, body, request[REQUEST_ID], via=f"client:{request[CALLER].client_id}"
    )
    return web.json_response(record.public())


@needs("requests:decide")
async def waiting_requests(request: web.Request) -> web.Response:
    records = await _requests(request).waiting()
    return web.json_response({"requests": [r.for_decision() for r in records]})
