"""`/directory/services` (local or federated search) and `/directory/contacts` (members, their
endpoints and status, and their lead CAF contacts, from the signed federation metadata)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schemas import Problem, is_gss_code

from ..errors import BadRequest, NotFound
from ..keys import DIRECTORY, MEMBERS, PEERS, SETTINGS
from ..service_directory import federated_search, parse_search, search_page
from ..service_directory._query import MAX_PER_PAGE
from ._auth import needs

__all__ = ["member_contacts", "search_services"]

SERVICES_PATH = "/directory/services"  # the same path under /federation/v1


@needs("directory:read")
async def search_services(request: web.Request) -> web.Response:
    search = parse_search(request.query)
    index = await request.config_dict[DIRECTORY].index()
    query = search.query
    if search.scope == "local":
        return web.json_response(search_page(index.search(query), query))
    if query.page * query.per_page > MAX_PER_PAGE:
        raise BadRequest(
            "federated search pages stop at the first 100 services",
            problems=[
                Problem(("page",), "query.depth", "page x per_page is at most 100", location="page")
            ],
        )
    settings = request.config_dict[SETTINGS]
    members_of = request.config_dict.get(MEMBERS)
    members = members_of().active_members() if members_of is not None else []
    if query.authority is not None:
        members = [member for member in members if member.id == query.authority]
    peers = request.config_dict.get(PEERS)

    async def ask(member: str, params: dict[str, str]) -> tuple[int, Any]:
        assert peers is not None  # noqa: S101 - members are known only on a federated node
        reply = await peers.get(member, SERVICES_PATH, params)
        return reply.status, reply.body

    page = await federated_search(
        search, index, settings.member_id, members, ask, settings.directory_peer_timeout_seconds
    )
    return web.json_response(page)


def _member_json(member: Any) -> dict[str, Any]:
    return {
        "id": member.id,
        "name": member.name,
        "status": member.status,
        "endpoint": member.endpoint,
        "services_endpoint": member.services_endpoint,
        "lead_contacts": [contact.model_dump(mode="json") for contact in member.lead_contacts],
    }


@needs("directory:read")
async def member_contacts(request: web.Request) -> web.Response:
    authority = request.query.get("authority")
    if authority is not None and not is_gss_code(authority):
        raise BadRequest(
            "authority is not valid",
            problems=[
                Problem(
                    ("authority",),
                    "query.gss",
                    "a GSS code such as E09000007",
                    location="authority",
                )
            ],
        )
    members_of = request.config_dict.get(MEMBERS)
    if members_of is None:
        raise NotFound("this node is not a member of a federation")
    metadata = members_of().metadata
    members = [m for m in metadata.members if authority is None or m.id == authority]
    if authority is not None and not members:
        raise NotFound("no such member")
    return web.json_response(
        {
            "federation": metadata.federation,
            "version": metadata.version,
            "members": [_member_json(member) for member in members],
        }
    )
