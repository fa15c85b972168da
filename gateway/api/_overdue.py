"""`GET /api/v1/overdue`: what the time rules say is due on the episodes held here (DESIGN 3.6)."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from schemas import london_today

from ..errors import BadRequest
from ..keys import AUDIT, ENGINE, EPISODES
from ..timeliness import TimeRule, due_by
from ._auth import needs
from ._common import draft

__all__ = ["MAX_AHEAD_DAYS", "MAX_LISTED", "list_overdue"]

MAX_AHEAD_DAYS = 366
MAX_LISTED = 5_000


def _query(request: web.Request) -> tuple[dt.date, int, frozenset[TimeRule], int]:
    q = request.query
    try:
        as_of = dt.date.fromisoformat(q["as_of"]) if "as_of" in q else london_today()
        ahead = int(q.get("ahead_days", "0"))
        limit = int(q.get("limit", "1000"))
        rules = frozenset(TimeRule(r) for r in q.getall("rule", [r.value for r in TimeRule]))
    except ValueError:
        raise BadRequest(
            "as_of is a date, ahead_days and limit are numbers, rule is one of "
            + ", ".join(r.value for r in TimeRule)
        ) from None
    if not 0 <= ahead <= MAX_AHEAD_DAYS or not 1 <= limit <= MAX_LISTED:
        raise BadRequest(f"ahead_days is 0 to {MAX_AHEAD_DAYS}, limit 1 to {MAX_LISTED}")
    if dt.date.max - as_of < dt.timedelta(days=ahead):
        raise BadRequest("as_of plus ahead_days is past the calendar's last day (9999-12-31)")
    return as_of, ahead, rules, limit


@needs("episodes:read")
async def list_overdue(request: web.Request) -> web.Response:
    """Items due on or before `as_of` (today in London by default) plus `ahead_days`, earliest
    first: overdue ones first, then those coming up. Episode ids, rules and dates only."""
    as_of, ahead, rules, limit = _query(request)
    engine, store = request.config_dict[ENGINE], request.config_dict[EPISODES]
    found = await due_by(engine, store, as_of + dt.timedelta(days=ahead), rules)
    listed = found.items
    items = [
        {
            "episode_id": item.episode_id,
            "rule": item.due.rule.value,
            "due_on": item.due.due_on.isoformat(),
            "days_overdue": item.due.days_overdue(as_of),
        }
        for item in listed[:limit]
    ]
    audit = request.config_dict[AUDIT]
    async with audit.transaction() as connection:
        await audit.append(
            connection,
            draft(
                request,
                "overdue.list",
                None,
                results=len(items),
                more=len(listed) > limit,
                unreadable=len(found.unreadable),
            ),
        )
    return web.json_response(
        {
            "as_of": as_of.isoformat(),
            "items": items,
            "more": len(listed) > limit,
            "unreadable": found.unreadable,
        }
    )
