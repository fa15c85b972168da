"""The child view: one episode's consent statements in force, what the consent engine would decide
for a recipient the lead contact picks (and why), and the sharing register, exported as CSV or PDF
for a subject access request."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from schemas import AgencyType, ConsentStatement, Episode, EpisodeState, Section, london_today

from ..audit import Outcome
from ..consent import ConsentRequest, Recipient, decide
from ..errors import BadRequest, GatewayError, NotFound
from ..federation.subject_access import (
    CHILD_KEYS,
    IDENTIFYING_KEYS,
    child_query,
    episodes_of_child,
)
from ..keys import AUDIT, EPISODES, MEMBERS, NOTIFICATIONS, SETTINGS
from ..protection import FOUND_THRESHOLD
from ..storage import aware_utc
from ..storage._tables import register
from ._export import register_csv, register_pdf
from ._web import CONSOLE_PATH, audit, audit_view, render, uuid_of

__all__ = ["child_page", "episode_lookup", "export_register", "find_child"]


def _status(statement: ConsentStatement, today: dt.date) -> str:
    """As the consent engine decides today: a withdrawal counts at once, even one dated ahead."""
    if statement.withdrawn_on is not None:
        return "withdrawn"
    if statement.given_on > today:
        return "not yet given"
    if statement.valid_until is not None and statement.valid_until < today:
        return "expired"
    return "in force"


def _agencies(refs: list[Any]) -> list[str]:
    return [
        " / ".join(
            part
            for part in (
                ref.agency_type.value.replace("_", " ") if ref.agency_type else None,
                ref.name,
                ref.authority,
            )
            if part
        )
        for ref in refs
    ]


def _sections(sections: list[Section] | None) -> list[str]:
    if sections is None:
        return ["all"]
    return [x.value.replace("_", " ") for x in sections] or ["none"]


def _statements(episode: Episode) -> list[dict[str, Any]]:
    today = london_today()
    return [
        {
            "id": s.consent_id,
            "status": _status(s, today),
            "given_by": ", ".join(g.role.value.replace("_", " ") for g in s.given_by),
            "given_on": s.given_on,
            "purposes": [p.replace("_", " ") for p in s.purposes] or ["any"],
            # As the consent engine reads them: no recipient named places no limit on recipients;
            # sections None permits every section, an empty list none.
            "share_with": _agencies(s.share_with) or ["anyone not excluded (no limit)"],
            "excluded": _agencies(s.excluded),
            "sections": _sections(s.sections),
            "valid_until": s.valid_until,
            "withdrawn_on": s.withdrawn_on,
        }
        for s in episode.consents
    ]


def _approvers(row: Any) -> str:
    """Everyone who approved a disclosure, as one cell: the requesting borough's lead contact, an
    override's second approver, the holder's lead contact who released it."""
    named = [
        (row.approved_by, ""),
        (row.second_approved_by, " (second)"),
        (row.holder_approved_by, " (holder)"),
    ]
    return ", ".join(who + role for who, role in named if who)


async def register_rows(request: web.Request, episode_id: str) -> list[dict[str, Any]]:
    directory = request.config_dict[MEMBERS]()
    async with request.config_dict[AUDIT].engine.connect() as connection:
        rows = await connection.execute(
            select(register)
            .where(register.c.episode_id == episode_id)
            .order_by(register.c.disclosed_at)
        )
        found = []
        for row in rows:
            member = directory.member(row.counterpart)
            found.append(
                {
                    "direction": row.direction,
                    "counterpart": row.counterpart,
                    "counterpart_name": member.name if member else row.counterpart,
                    "requested_by": row.requested_by,
                    "approved_by": _approvers(row),
                    "sections": list(row.sections),
                    "basis": row.basis,
                    "override": bool(row.override),
                    "disclosed_at": aware_utc(row.disclosed_at),
                    "withdrawn_at": aware_utc(row.withdrawn_at),
                    "returned_at": aware_utc(row.returned_at),
                }
            )
    return found


async def _held_by(request: web.Request, episode_id: str) -> str | None:
    """Who holds a copy transferred from here now, as this node last heard: the member it moved
    to, or one a later holder's notification named (`Notifications.known_holder`)."""
    notifications = request.config_dict.get(NOTIFICATIONS)
    if notifications is None:  # a node outside a federation transfers nothing
        return None
    async with request.config_dict[AUDIT].engine.connect() as connection:
        return await notifications.known_holder(connection, episode_id) or None


async def _episode(request: web.Request, episode_id: str) -> Episode | None:
    async with request.config_dict[AUDIT].engine.connect() as connection:
        try:
            return (await request.config_dict[EPISODES].get(connection, episode_id)).episode
        except NotFound:
            return None


def _check(episode: Episode, query: Any) -> dict[str, Any] | None:
    """The consent engine's answer for the recipient picked in the form (None: nothing picked)."""
    agency = query.get("agency_type")
    if not agency:
        return None
    try:
        recipient = Recipient(
            AgencyType(agency),
            None,
            query.get("authority") or None,
        )
        decision = decide(
            episode,
            ConsentRequest(
                recipient=recipient,
                purpose=query.get("purpose") or "early_help",
                sections=None,
                at=london_today(),
                decided_on=london_today(),  # a withdrawal dated ahead counts from today
            ),
        )
    except ValueError:
        return {"invalid": True}
    return {
        "invalid": False,
        "permitted": decision.permitted,
        "code": decision.code.value if decision.code else None,
        "rule": decision.rule.value,
        "consent_id": decision.consent_id,
        "reason": decision.reason,
        "permitted_sections": sorted(
            s.value.replace("_", " ") for s in decision.permitted_sections
        ),
        "refused_sections": sorted(s.value.replace("_", " ") for s in decision.refused_sections),
        "findings": decision.statements,
    }


_LOOKUP: dict[str, Any] = {
    "title": "Find an episode",
    "error": None,
    "value": "",
    "child": {},
    "child_error": None,
    "found": None,
}


async def episode_lookup(request: web.Request) -> web.Response:
    """The child view's entry: type or paste an episode id, or find a child (`find_child`)."""
    wanted = request.query.get("episode", "").strip()
    if wanted:
        try:
            raise web.HTTPSeeOther(f"{CONSOLE_PATH}/episodes/{uuid.UUID(wanted)}")
        except ValueError:
            context = {**_LOOKUP, "error": "Enter an episode id (a UUID).", "value": wanted[:100]}
            return render(request, "episode_lookup.html", context, status=422)
    return render(request, "episode_lookup.html", _LOOKUP)


async def find_child(request: web.Request) -> web.Response:
    """Subject access: every episode of a child this node holds or received, found by the child's
    match keys (a form, so they stay out of URLs and logs), each with its register entries."""
    form = await request.post()
    given = {k: str(form.get(k, "")).strip()[:100] for k in CHILD_KEYS}
    keys = tuple(k for k, v in given.items() if v)  # names, never values
    config = request.config_dict
    try:
        query = child_query({k: v for k, v in given.items() if v})
        async with config[AUDIT].engine.connect() as connection:
            found = await episodes_of_child(connection, query, config[EPISODES])
            counted = await connection.execute(
                select(register.c.episode_id, func.count())
                .where(register.c.episode_id.in_([f.episode_id for f in found]))
                .group_by(register.c.episode_id)
            )
            entries = {row[0]: row[1] for row in counted}
    except GatewayError as error:
        rule = error.problems[0].rule if error.problems else error.wire_code
        await audit(
            request,
            "console.search",
            None,
            Outcome.FAILED if error.status >= 500 else Outcome.REFUSED,
            reason=error.wire_code,
            keys=keys,
            rule=rule,
        )
        if not isinstance(error, BadRequest):
            raise  # the console's error page
        message = error.problems[0].message if error.problems else str(error)
        context = {**_LOOKUP, "child": given, "child_error": message}
        return render(request, "episode_lookup.html", context, status=422)
    await audit_view(
        request,
        "child_search",
        {"episodes": [f.episode_id for f in found]},
        keys=[k for k in keys if k in IDENTIFYING_KEYS],
        found=len(found),
    )
    rows = [{"match": f, "entries": entries.get(f.episode_id, 0)} for f in found]
    context = {**_LOOKUP, "child": given, "found": rows, "found_threshold": FOUND_THRESHOLD}
    return render(request, "episode_lookup.html", context)


async def child_page(request: web.Request) -> web.Response:
    episode_id = uuid_of(request, "episode_id")
    episode = await _episode(request, episode_id)
    rows = await register_rows(request, episode_id)
    if episode is None and not rows:
        raise NotFound("this node neither holds nor received that episode")
    check = _check(episode, request.query) if episode is not None else None
    await audit(request, "console.view", episode_id, page="episode", registered=len(rows))
    if check is not None and not check["invalid"]:
        await audit(
            request,
            "consent.check",
            episode_id,
            Outcome.SUCCESS if check["permitted"] else Outcome.REFUSED,
            reason=check["code"],
            rule=check["rule"],
        )
    members = request.config_dict[MEMBERS]().metadata.members
    transferred = episode is not None and episode.state is EpisodeState.TRANSFERRED
    held_by = await _held_by(request, episode_id) if transferred else None
    return render(
        request,
        "child.html",
        {
            "title": "Child view",
            "episode_id": episode_id,
            "episode": episode,
            "statements": _statements(episode) if episode is not None else [],
            "rows": rows,
            "check": check,
            "agency_types": [a.value for a in AgencyType],
            "members": members,
            "names": {member.id: member.name for member in members},
            "held_by": held_by,
            "query": request.query,
        },
    )


async def export_register(request: web.Request) -> web.Response:
    episode_id = uuid_of(request, "episode_id")
    kind = request.match_info["format"]
    rows = await register_rows(request, episode_id)
    if not rows and await _episode(request, episode_id) is None:
        raise NotFound("this node neither holds nor received that episode")
    await audit(request, "register.export", episode_id, format=kind, results=len(rows))
    stamp = dt.datetime.now(dt.UTC)
    name = f"sharing-register-{episode_id}"
    if kind == "csv":
        body, content_type = register_csv(rows).encode("utf-8"), "text/csv; charset=utf-8"
    else:
        body = register_pdf(rows, episode_id, _title(request), stamp)
        content_type = "application/pdf"
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{name}.{kind}"',
        },
    )


def _title(request: web.Request) -> str:
    member_id = request.config_dict[SETTINGS].member_id
    member = request.config_dict[MEMBERS]().member(member_id)
    return f"{member.name if member else member_id} ({member_id})"
