"""Reading and changing episodes: GET one (JSON, national XML or a local format), search, events."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import CHANGED, NOT_CARRIED, NOT_READABLE, AdapterError, get_adapter, write_checked
from schemas import ClosureOutcome, Episode, Problem

from ..audit import Outcome
from ..episodes import Event, EventBody, Stored, TacMemberAdded, apply_event
from ..errors import BadRequest, PreconditionFailed
from ..federation.notifications import announcement, audience, change_of, custody_of
from ..federation.subject_access import CHILD_KEYS, IDENTIFYING_KEYS, child_query
from ..federation.withdrawals import push_closure_withdrawal
from ..keys import AUDIT, EPISODES, MEMBERS, OUTBOX, SETTINGS
from ._auth import needs
from ._common import adapter_error, audited_refusals, draft, episode_id_of, json_body

__all__ = ["get_episode", "post_event", "search_episodes"]


@needs("episodes:read")
async def get_episode(request: web.Request) -> web.Response:
    episode_id = episode_id_of(request)
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
        written = write_checked(adapter, [stored.episode])
    except AdapterError as exc:
        raise adapter_error(exc) from None
    headers["CAF-Fidelity"] = _fidelity(written.warnings)
    return web.Response(body=written.data, content_type=adapter.media_type, headers=headers)


def _fidelity(warnings: list[Problem]) -> str:
    """How many of the episode's values the document does not give back, by rule (its places
    are for `cafx adapt` to list: a header is no place for a hundred pointers)."""
    counts = {rule: sum(w.rule == rule for w in warnings) for rule in (NOT_CARRIED, CHANGED)}
    said = [f"{rule.removeprefix('write.')}={n}" for rule, n in counts.items()]
    if any(w.rule == NOT_READABLE for w in warnings):
        said.append("not_readable=1")
    return ", ".join(said)


@needs("episodes:read")
async def search_episodes(request: web.Request) -> web.Response:
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    searched = tuple(k for k in CHILD_KEYS if request.query.get(k))  # keys, never values
    try:
        query = child_query(request.query)
        async with audit.transaction() as connection:
            found = await store.search(connection, query)
            await audit.append(
                connection,
                draft(
                    request,
                    "episode.search",
                    None,
                    keys=tuple(k for k in searched if k in IDENTIFYING_KEYS),
                    results=len(found),
                ),
            )
    except BadRequest as error:  # a refused search is recorded too (422s are BadRequests)
        rule = error.problems[0].rule if error.problems else error.wire_code
        await audit.record(
            draft(
                request,
                "episode.search",
                None,
                outcome=Outcome.REFUSED,
                reason=error.wire_code,
                keys=searched,
                rule=rule,
            )
        )
        raise
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


_ANNOUNCED = {
    "tac_member_added": "tac_notification",
    "lead_professional_changed": "lead_professional_update",
    "review": "episode_update",
    "closure": "episode_update",
}


async def _tell_the_team(
    request: web.Request,
    connection: AsyncConnection,
    before: Episode,
    changed: Stored,
    event: Event,
) -> tuple[int, int]:
    """DESIGN 3.6: the lead professional and the TAC are kept informed: a new TAC member or lead
    professional, a review held or the episode closed (protocol 003 section 7: all developments)
    travels as a message (in this transaction, through the outbox) to every other authority with
    a TAC member or the lead professional on the episode, and a new lead professional also to the
    authority of the one replaced (it may have nobody else on the team).
    Each is dated as the change is made, so a receiver can tell the newest whatever order they
    arrive in; a moved episode's custody steps go with it (`federation/notifications.py`).
    An authority outside the federation is left out (`audience`). How many authorities are told,
    and how many left out."""
    kind = _ANNOUNCED.get(event.type)
    outbox = request.config_dict.get(OUTBOX)
    if kind is None or outbox is None:
        return 0, 0
    me, episode = request.config_dict[SETTINGS].member_id, changed.episode
    team = [
        *episode.tac_members,
        *([episode.lead_professional] if episode.lead_professional else []),
    ]
    if kind == "lead_professional_update" and before.lead_professional is not None:
        team.append(before.lead_professional)
    authorities, left_out = audience(
        (p.authority for p in team if p.authority and p.authority != me),
        request.config_dict.get(MEMBERS),
    )
    if not authorities:
        return 0, left_out
    body = announcement(
        episode,
        holder=me,
        practitioner=event.member
        if isinstance(event, TacMemberAdded)
        else episode.lead_professional,
        changed_at=dt.datetime.now(dt.UTC),
        revision=changed.revision,
        custody=await custody_of(connection, str(episode.episode_id)),
        change=change_of(event),
    )
    for authority in authorities:
        await outbox.enqueue(connection, authority, kind, body)
    return len(authorities), left_out


async def _push_closure_withdrawal(
    request: web.Request, connection: AsyncConnection, episode: Episode, event: Event
) -> int:
    """DESIGN 3.5: closing because consent was withdrawn is a withdrawal of every statement (the
    consent engine treats it so), pushed like one, in this transaction, to every member that
    received data on their strength. How many members are told."""
    if event.type != "closure" or event.closure.outcome is not ClosureOutcome.CONSENT_WITHDRAWN:
        return 0
    outbox = request.config_dict.get(OUTBOX)  # None: a node outside a federation
    return await push_closure_withdrawal(connection, outbox, episode)


def _unchanged_since_read(request: web.Request, stored: Stored) -> None:
    """`If-Match`: the change only on the revision it names (an ETag this API gave), so that a
    change made again after a lost answer (a second TAC member, a second review) or on top of
    another's change is refused, not applied. `*` matches any revision; a weak tag (`W/"3"`)
    none, as RFC 9110 compares If-Match strongly; without the header, no check. The ETag names
    the episode's revision, whichever representation gave it."""
    lines = request.headers.getall("If-Match", [])
    if not lines:
        return
    tags = {tag.strip() for line in lines for tag in line.split(",")}
    if "*" not in tags and f'"{stored.revision}"' not in tags:
        raise PreconditionFailed("the episode has changed since the revision If-Match names")


@needs("episodes:write")
async def post_event(request: web.Request) -> web.Response:
    episode_id = episode_id_of(request)
    body = await json_body(request, EventBody)
    audit, store = request.config_dict[AUDIT], request.config_dict[EPISODES]
    async with (
        audited_refusals(request, "episode.event", str(episode_id)),
        audit.transaction() as connection,
    ):
        stored = await store.get(connection, episode_id, for_update=True)
        _unchanged_since_read(request, stored)
        changed = await store.replace(connection, stored, apply_event(stored.episode, body.event))
        told, left_out = await _tell_the_team(
            request, connection, stored.episode, changed, body.event
        )
        pushed = await _push_closure_withdrawal(request, connection, changed.episode, body.event)
        await audit.append(
            connection,
            draft(
                request,
                "episode.event",
                str(episode_id),
                type=body.event.type,
                told=told,
                left_out=left_out,  # authorities outside the federation, not told
                pushed=pushed,
            ),
        )
    return web.json_response(
        changed.episode.model_dump(mode="json"), headers={"ETag": f'"{changed.revision}"'}
    )
