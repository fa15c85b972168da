"""`GET /federation/v1/directory/services`: another member's search of this borough's services
(a signed request, like every federation call; the answer is signed by the transport). Service
records are public Family Information Service data: no attestation is asked for, nothing is
audited. A member answers for its own services only, and never fans out again."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from directory.services import SearchResult

from ..keys import DIRECTORY, SETTINGS
from ..service_directory import parse_search, search_page

__all__ = ["directory_services"]


async def directory_services(request: web.Request) -> web.Response:
    query = parse_search(request.query).query
    me = request.config_dict[SETTINGS].member_id
    if query.authority not in (None, me):
        return web.json_response(search_page(SearchResult(0), query))
    index = await request.config_dict[DIRECTORY].index()
    return web.json_response(search_page(index.search(replace(query, authority=me)), query))
