"""Reading and changing episodes: GET one (JSON, national XML or a local format), search, events."""

from __future__ import annotations

import datetime as dt
import uuid

from aiohttp import web

from adapters import AdapterError, get_adapter
from schemas import IdentifierError, Problem

from ..episodes import EventBody, apply_event
from ..errors import BadRequest, NotFound, SchemaViolation
from ..keys import AUDIT, EPISODES
from ..protection import NameQuery
from ._auth import needs
from ._common import adapter_error, audited_refusals, draft, json_body

__all__ = ["get_episode", "post_event", "search_episodes"]


def _episode_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["episode_id"])
    except ValueError:
        raise NotFound("no such episode") from None


@needs("episodes:read")
async def get_episode(request: web.Request) -> web.Response:
    episode_id = _episode_id(request)
    fmt = request.query.get("format")
    if fmt is None and "application/xml" in request.headers.get("Accept", ""):
        fmt = "national-xml"
    try:
        adapter = get_adapter(fmt) if fmt else None
    except AdapterError as exc:
        raise adapter_error(exc) from None
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    async with (
        audited_refusals(request, "episode.read", str(episode_id)),
        audit.transaction() as connection,
    ):
        stored = await store.get(connection, episode_id)
        await audit.append(
            connection,
            draft(request, "episode.read", str(episode_id), format=fmt or "national-json"),
        )
    headers = {"ETag": f'"{stored.revision}"'}
    if adapter is None:
        return web.json_response(stored.episode.model_dump(mode="json"), headers=headers)
    try:
        body = adapter.from_national([stored.episode])
    except AdapterError as exc:
        raise adapter_error(exc) from None
    return web.Response(body=body, content_type=adapter.media_type, headers=headers)


def _query(request: web.Request) -> NameQuery:
    q = request.query
    given, family, born = q.get("given_name"), q.get("family_name"), q.get("date_of_birth")
    date_of_birth = None
    if born is not None:
        try:
            date_of_birth = dt.date.fromisoformat(born)
        except ValueError:
            raise SchemaViolation(
                "date_of_birth must be YYYY-MM-DD",
                problems=[Problem(("date_of_birth",), "date.format", "not an ISO date")],
            ) from None
    if not (q.get("nhs_number") or q.get("upn") or (given and family and date_of_birth)):
        raise BadRequest("search by nhs_number, upn, or given_name + family_name + date_of_birth")
    return NameQuery(
        given_names=given or "",
        family_name=family or "",
        date_of_birth=date_of_birth,
        nhs_number=q.get("nhs_number"),
        upn=q.get("upn"),
    )


@needs("episodes:read")
async def search_episodes(request: web.Request) -> web.Response:
    query = _query(request)
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    async with audit.transaction() as connection:
        try:
            found = await store.search(connection, query)
        except IdentifierError as exc:
            raise SchemaViolation(
                "an identifier is not valid", problems=[Problem((), exc.rule, exc.message)]
            ) from None
        await audit.append(
            connection,
            draft(
                request,
                "episode.search",
                None,
                keys=tuple(
                    k for k in ("date_of_birth", "nhs_number", "upn") if request.query.get(k)
                ),
                results=len(found),
            ),
        )
    matches = [
        {
            "episode_id": str(episode.episode_id),
            "confidence": round(match.confidence, 3),
            "basis": match.basis.value,
            "state": episode.state.value,
            "home_authority": episode.home_authority,
        }
        for match, episode in found
    ]
    return web.json_response({"matches": matches})


@needs("episodes:write")
async def post_event(request: web.Request) -> web.Response:
    episode_id = _episode_id(request)
    body = await json_body(request, EventBody)
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    async with (
        audited_refusals(request, "episode.event", str(episode_id)),
        audit.transaction() as connection,
    ):
        stored = await store.get(connection, episode_id, for_update=True)
        changed = await store.replace(connection, stored, apply_event(stored.episode, body.event))
        await audit.append(
            connection, draft(request, "episode.event", str(episode_id), type=body.event.type)
        )
    return web.json_response(
        changed.episode.model_dump(mode="json"), headers={"ETag": f'"{changed.revision}"'}
    )
