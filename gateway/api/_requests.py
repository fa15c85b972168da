"""Cross-borough requests from practitioners (DESIGN 3.3), on their home node: raised by the borough
system, verified by a lead CAF contact of this borough, then sent to the target member."""

from __future__ import annotations

from aiohttp import web

from ..errors import NotFound
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
    body = await json_body(request, RequestInput)
    record = await _requests(request).create(request[CALLER].client_id, body, request[REQUEST_ID])
    return web.json_response(record.public(), status=201)


@needs("requests:write")
async def get_request(request: web.Request) -> web.Response:
    record = await _requests(request).get(request.match_info["request_id"])
    return web.json_response(record.public())


@needs("requests:decide")
async def decide_request(request: web.Request) -> web.Response:
    body = await json_body(request, Decision)
    record = await _requests(request).decide(
        request.match_info["request_id"], body, request[REQUEST_ID]
    )
    return web.json_response(record.public())


@needs("requests:decide")
async def waiting_requests(request: web.Request) -> web.Response:
    records = await _requests(request).waiting()
    return web.json_response({"requests": [r.public() for r in records]})
